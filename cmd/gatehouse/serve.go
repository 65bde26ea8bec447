package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gatehouse-auth/gatehouse/loginui"
	"github.com/gatehouse-auth/gatehouse/policy"
	"github.com/gatehouse-auth/gatehouse/proxy"
	"github.com/gatehouse-auth/gatehouse/store"
)

func cmdServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	file := configFlag(fs)
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{fmt.Sprintf("serve takes no arguments (got %q)", pos[0])}
	}
	cfg, err := requireConfig(*file)
	if err != nil {
		return err
	}
	logOut := newFlushingWriter(stderr, 100*time.Millisecond)
	defer logOut.Close()
	log := newLogger(logOut, cfg.LogLevel)
	srv, err := newServer(cfg, log, logOut, time.Now)
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			srv.reload()
		}
	}()
	return srv.run(ctx)
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// server is one running gateway: store, pages, proxy, listeners and the
// control socket.
type server struct {
	file    string
	cfg     atomic.Pointer[Config]
	log     *slog.Logger
	db      *store.DB
	ui      *loginui.UI
	mailer  loginui.Mailer // nil when mail is off
	gw      *proxy.Gateway
	certs   *proxy.Certs
	ls      proxy.Listeners
	control net.Listener
	now     func() time.Time
	metrics *metrics     // nil when metrics.listen is unset
	metln   net.Listener // metrics.listen
}

// newServer opens everything a gateway needs and binds its sockets, so
// that errors (port in use, database locked) surface before it reports
// ready. Access lines go to access (in production the same stream as
// log) when the config turns them on; nil turns them off.
func newServer(cfg *Config, log *slog.Logger, access io.Writer, now func() time.Time) (_ *server, err error) {
	s := &server{file: cfg.File, log: log, now: now}
	s.cfg.Store(cfg)
	s.logWarnings(cfg)
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create data_dir: %w", pathError(err))
	}
	s.db, err = store.Open(cfg.DBPath(), store.Options{Timeout: time.Second, Now: now})
	if errors.Is(err, store.ErrInUse) {
		return nil, fmt.Errorf("the database %s is in use: is another gatehouse running with this data_dir?", cfg.DBPath())
	} else if err != nil {
		return nil, fmt.Errorf("cannot open the database: %w", err)
	}
	if err := s.bootstrapAdmin(); err != nil {
		return nil, err
	}
	secret := cfg.Secret
	if secret == nil {
		if secret, err = loadOrCreateSecret(filepath.Join(cfg.DataDir, "session.key")); err != nil {
			return nil, err
		}
	}
	// newMailer returns the loginui.Mailer interface itself, nil when mail
	// is off: never a typed nil pointer, which the UI would take for a
	// configured mailer.
	if s.mailer, err = newMailer(cfg.Mail, cfg.DataDir, log); err != nil {
		return nil, err
	}
	// Interfaces stay nil, not typed nil pointers, when metrics are off.
	var signIns loginui.Metrics
	var requests proxy.Metrics
	if cfg.MetricsAddr != "" {
		s.metrics = newMetrics(versionString(), log)
		s.metrics.setApps(cfg.Proxy.Policy)
		s.metrics.watchStore(s.db)
		signIns, requests = s.metrics, s.metrics
	}
	sessionCfg := cfg.Session
	sessionCfg.Secrets = [][]byte{secret}
	s.ui, err = loginui.New(sessionCfg, loginui.Deps{
		DB:      s.db,
		Log:     log,
		Now:     now,
		Mailer:  s.mailer,
		Metrics: signIns,
		ClientIP: func(r *http.Request) netip.Addr {
			ip, _ := proxy.ClientIP(r, s.cfg.Load().Proxy.TrustedProxies)
			return ip
		},
		IsAppHost: func(host string) bool {
			_, ok := s.cfg.Load().Proxy.Policy.Lookup(host)
			return ok
		},
	})
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	if s.metrics != nil {
		s.metrics.watchHashing(s.ui)
	}
	scheme := "https"
	if cfg.TLS.Mode == proxy.TLSOff {
		scheme = "http"
	}
	var accessLog io.Writer
	if cfg.AccessLog && cfg.LogLevel <= slog.LevelInfo { // access lines are info lines
		accessLog = access
	}
	s.gw, err = proxy.New(cfg.Proxy, proxy.Deps{
		Auth:            s.ui,
		Pages:           s.ui,
		UI:              s.ui.Handler(),
		CookieNames:     s.ui.CookieNames(),
		Log:             log,
		AccessLog:       accessLog,
		Scheme:          scheme,
		UpstreamTimeout: cfg.UpstreamTime,
		Metrics:         requests,
	})
	if err != nil {
		return nil, err
	}
	if cfg.TLS.Mode != proxy.TLSOff {
		if s.ls.HTTPS, err = listen(cfg.HTTPSAddr, "listen.https"); err != nil {
			return nil, err
		}
	}
	if s.ls.HTTP, err = listen(cfg.HTTPAddr, "listen.http"); err != nil {
		return nil, err
	}
	if cfg.MetricsAddr != "" {
		if s.metln, err = listen(cfg.MetricsAddr, "metrics.listen"); err != nil {
			return nil, err
		}
	}
	tlsCfg := cfg.TLS
	tlsCfg.Hosts = cfg.Hosts
	tlsCfg.HTTPPort = listenerPort(s.ls.HTTP)
	tlsCfg.HTTPSPort = listenerPort(s.ls.HTTPS)
	tlsCfg.OnDemandAllowed = func(name string) bool { return onDemandAllowed(s.cfg.Load().Proxy.Policy, name) }
	if s.certs, err = proxy.NewCerts(tlsCfg, log, now); err != nil {
		return nil, err
	}
	if s.control, err = listenControl(cfg.SocketPath()); err != nil {
		return nil, err
	}
	return s, nil
}

// onDemandAllowed says whether a certificate may be obtained at the
// handshake for name: only when a wildcard app covers it (exact hosts are
// obtained at start-up), under the config serving now.
func onDemandAllowed(p *policy.Policy, name string) bool {
	app, ok := p.Lookup(name)
	return ok && strings.HasPrefix(p.Apps()[app].Host, "*.")
}

func listenerPort(ln net.Listener) int {
	if ln == nil {
		return 0
	}
	return ln.Addr().(*net.TCPAddr).Port
}

func listen(addr, key string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		var se *os.SyscallError
		if errors.As(err, &se) && errors.Is(se.Err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%s: %s is already in use by another program", key, addr)
		}
		if errors.As(err, &se) && errors.Is(se.Err, syscall.EACCES) {
			return nil, fmt.Errorf("%s: not allowed to listen on %s (ports below 1024 need privileges; see docs/deployment.md)", key, addr)
		}
		return nil, fmt.Errorf("%s: cannot listen on %s: %v", key, addr, errors.Unwrap(err))
	}
	return ln, nil
}

// run serves until ctx is done, then drains in-flight requests.
func (s *server) run(ctx context.Context) error {
	defer s.close()
	cfg := s.cfg.Load()
	attrs := []any{"config", s.file, "data_dir", cfg.DataDir, "tls", cfg.TLS.Mode}
	if s.ls.HTTPS != nil {
		attrs = append(attrs, "https", s.ls.HTTPS.Addr().String())
	}
	attrs = append(attrs, "http", s.ls.HTTP.Addr().String())
	if s.metln != nil {
		attrs = append(attrs, "metrics", s.metln.Addr().String())
		// Up until the public listeners have drained, so a scrape sees the shutdown.
		msrv := s.metrics.serve(s.metln)
		defer func() {
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if msrv.Shutdown(shutdownCtx) != nil {
				_ = msrv.Close()
			}
		}()
	}
	s.log.Info("gatehouse ready", attrs...)
	go s.serveControl()
	go s.purgeSessions(ctx)
	go s.watchConfig(ctx)
	err := proxy.Serve(ctx, s.gw, s.certs, s.ls, 30*time.Second, s.log)
	s.ui.Drain() // mails still being sent after their answer (password reset)
	s.log.Info("gatehouse stopped")
	return err
}

// reload loads the config file again and swaps the rules, apps and
// headers in; an invalid file is refused and the old config keeps serving.
func (s *server) reload() {
	next, err := loadConfig(s.file)
	if err == nil {
		err = s.gw.Swap(next.Proxy)
	}
	if s.metrics != nil {
		s.metrics.reloaded(err == nil)
	}
	if err != nil {
		s.log.Error("config reload refused; the previous config keeps serving", "err", err.Error())
		return
	}
	if s.metrics != nil {
		s.metrics.setApps(next.Proxy.Policy)
	}
	old := s.cfg.Load()
	s.logWarnings(next)
	if changed := restartNeeded(old, next); len(changed) > 0 {
		s.log.Warn("config reloaded; changes to "+strings.Join(changed, ", ")+" take effect after a restart", "sections", changed)
		next = withStatic(old, next)
	}
	s.cfg.Store(next)
	s.certs.SetHosts(next.Hosts)
	s.log.Info("config reloaded", "apps", len(next.Proxy.Apps))
}

// logWarnings logs what validate would warn about the config.
func (s *server) logWarnings(cfg *Config) {
	for _, w := range cfg.Warnings {
		s.log.Warn("config: "+w.Msg, "at", fmt.Sprintf("%s:%d", w.File, w.Line))
	}
}

// restartNeeded lists the sections whose changes cannot apply while
// running: listeners, certificates, the database and the logger are set up
// once, and so are the sign-in pages (session, login, branding), the
// mailer, the proxy's timeout and the metrics listener. Only what
// proxy.Gateway.Swap takes (apps, rules, headers, trusted proxies)
// changes on a reload.
func restartNeeded(old, next *Config) []string {
	var changed []string
	add := func(differs bool, section string) {
		if differs {
			changed = append(changed, section)
		}
	}
	o, n := old.Session, next.Session
	add(old.HTTPSAddr != next.HTTPSAddr || old.HTTPAddr != next.HTTPAddr, "listen")
	add(old.TLS.Mode != next.TLS.Mode || old.TLS.CertFile != next.TLS.CertFile || old.TLS.KeyFile != next.TLS.KeyFile ||
		old.TLS.Email != next.TLS.Email || old.TLS.CA != next.TLS.CA || !bytes.Equal(old.TLS.CARoots, next.TLS.CARoots) ||
		o.HSTS != n.HSTS, "tls")
	add(old.DataDir != next.DataDir, "data_dir")
	add(string(old.Secret) != string(next.Secret) || o.CookieName != n.CookieName || o.Domain != n.Domain ||
		o.IdleTimeout != n.IdleTimeout || o.Lifetime != n.Lifetime || o.RememberMe != n.RememberMe, "session")
	add(o.Limits != n.Limits || o.PasswordMinLength != n.PasswordMinLength || o.Registration != n.Registration ||
		o.RegistrationApproval != n.RegistrationApproval || !slices.Equal(o.DefaultRoles, n.DefaultRoles) ||
		o.TokenTTL != n.TokenTTL || o.InviteTTL != n.InviteTTL, "login")
	add(o.Brand.Title != n.Brand.Title || o.Brand.Color != n.Brand.Color || o.Brand.LogoType != n.Brand.LogoType ||
		!bytes.Equal(o.Brand.Logo, n.Brand.Logo), "branding")
	add(old.Mail != next.Mail, "mail")
	add(old.LogLevel != next.LogLevel || old.AccessLog != next.AccessLog, "log")
	add(old.UpstreamTime != next.UpstreamTime, "upstream_timeout")
	add(old.MetricsAddr != next.MetricsAddr, "metrics")
	return changed
}

// withStatic keeps the running values of everything a reload cannot change.
func withStatic(old, next *Config) *Config {
	c := *next
	c.HTTPSAddr, c.HTTPAddr, c.DataDir, c.TLS, c.Secret = old.HTTPSAddr, old.HTTPAddr, old.DataDir, old.TLS, old.Secret
	c.Session, c.MinPassword, c.Mail = old.Session, old.MinPassword, old.Mail
	c.LogLevel, c.AccessLog, c.UpstreamTime, c.MetricsAddr = old.LogLevel, old.AccessLog, old.UpstreamTime, old.MetricsAddr
	return &c
}

func (s *server) close() {
	if s.control != nil {
		_ = s.control.Close()
		_ = os.Remove(s.cfg.Load().SocketPath())
	}
	for _, ln := range []net.Listener{s.ls.HTTPS, s.ls.HTTP, s.metln} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	if s.certs != nil {
		s.certs.Close()
	}
	if s.gw != nil {
		s.gw.Close()
	}
	if s.db != nil {
		_ = s.db.Close()
	}
}

func (s *server) purgeSessions(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := s.db.DeleteExpiredSessions(); err != nil {
				s.log.Error("purging expired sessions", "err", err)
			} else if n > 0 {
				s.log.Info("purged expired sessions", "count", n)
			}
		}
	}
}

// bootstrapAdmin creates the "admin" account when the store has no users,
// with the password from GATEHOUSE_ADMIN_PASSWORD(_FILE) or a random one
// that is logged this once.
func (s *server) bootstrapAdmin() error {
	n, err := s.db.CountUsers()
	if err != nil {
		return fmt.Errorf("cannot read users: %w", err)
	}
	if n > 0 {
		return nil
	}
	password, fromEnv, err := adminPassword()
	if err != nil {
		return err
	}
	hash, err := store.HashPassword(password)
	if err != nil {
		return err
	}
	if err := s.db.CreateUser(store.User{Username: "admin", DisplayName: "Administrator", PasswordHash: hash, Roles: []string{"admin"}}); err != nil {
		return fmt.Errorf("cannot create the admin account: %w", err)
	}
	if fromEnv {
		s.log.Info("created the admin account with the password from the environment", "user", "admin")
	} else {
		// The one deliberate secret in the log: shown once, on the very
		// first start, so a newcomer can sign in. Change it afterwards.
		s.log.Warn("created the admin account; sign in and change this password (it is not shown again)",
			"user", "admin", "password", password)
	}
	return nil
}

func adminPassword() (string, bool, error) {
	if f := os.Getenv("GATEHOUSE_ADMIN_PASSWORD_FILE"); f != "" {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", false, fmt.Errorf("GATEHOUSE_ADMIN_PASSWORD_FILE: %w", pathError(err))
		}
		return strings.TrimRight(string(data), "\r\n"), true, nil
	}
	if p := os.Getenv("GATEHOUSE_ADMIN_PASSWORD"); p != "" {
		return p, true, nil
	}
	return randomPassword(), false, nil
}

// randomPassword is 20 characters from an unambiguous alphabet (~110 bits).
func randomPassword() string {
	const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 20)
	for i := range b {
		b[i] = alphabet[randIntn(len(alphabet))]
	}
	return string(b)
}

func randIntn(n int) int {
	var buf [1]byte
	for {
		_, _ = rand.Read(buf[:])
		if int(buf[0]) < 256-256%n {
			return int(buf[0]) % n
		}
	}
}

// loadOrCreateSecret keeps the session secret in data_dir so sessions
// survive restarts when the config names none.
func loadOrCreateSecret(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		if s := strings.TrimSpace(string(data)); len(s) >= 32 {
			return []byte(s), nil
		}
		return nil, fmt.Errorf("%s is too short to be a session secret; delete it to generate a new one", path)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cannot read the session secret: %w", pathError(err))
	}
	raw := make([]byte, 48)
	_, _ = rand.Read(raw)
	secret := base64.RawURLEncoding.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("cannot write the session secret: %w", pathError(err))
	}
	return []byte(secret), nil
}

// rolesNobodyHas lists roles the rules name that no user holds. The second
// result is false when the store cannot be read (validate works without it).
func rolesNobodyHas(cfg *Config) ([]string, bool) {
	if _, err := os.Stat(cfg.DBPath()); err != nil {
		return nil, false
	}
	var held []string
	err := withStore(cfg,
		func(c *controlClient) error {
			out, err := c.user(userRequest{Verb: "held-roles"})
			if err != nil {
				return err
			}
			return json.Unmarshal([]byte(out), &held)
		},
		func(db *store.DB) error {
			out, err := execUser(db, userRequest{Verb: "held-roles"}, nil)
			if err != nil {
				return err
			}
			return json.Unmarshal([]byte(out), &held)
		})
	if err != nil {
		return nil, false
	}
	var missing []string
	for _, r := range cfg.Proxy.Policy.Roles() {
		if !slices.Contains(held, r) {
			missing = append(missing, r)
		}
	}
	return missing, true
}

func cmdValidate(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	file := configFlag(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := requireConfig(*file)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	for _, w := range cfg.Proxy.Policy.Lint() {
		fmt.Fprintf(stdout, "warning: %s: %s\n", w.Source, w.Msg)
	}
	if missing, ok := rolesNobodyHas(cfg); ok {
		for _, role := range missing {
			fmt.Fprintf(stdout, "warning: role %q appears in rules but no user has it\n", role)
		}
	}
	apps := "apps"
	if len(cfg.Proxy.Apps) == 1 {
		apps = "app"
	}
	fmt.Fprintf(stdout, "%s: ok (%d %s)\n", cfg.File, len(cfg.Proxy.Apps), apps)
	return nil
}
