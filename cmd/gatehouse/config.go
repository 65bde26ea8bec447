package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ulule/limiter/v3"

	"github.com/gatehouse-auth/gatehouse/loginui"
	"github.com/gatehouse-auth/gatehouse/policy"
	"github.com/gatehouse-auth/gatehouse/proxy"
	"github.com/gatehouse-auth/gatehouse/store"
)

// fileConfig mirrors the YAML file. Zero values mean "use the default".
type fileConfig struct {
	Listen struct {
		HTTPS string `yaml:"https"`
		HTTP  string `yaml:"http"`
	} `yaml:"listen"`
	TLS struct {
		Mode     string `yaml:"mode"`
		Email    string `yaml:"email"`
		CA       string `yaml:"ca"`
		CARoot   string `yaml:"ca_root"`
		CertFile string `yaml:"cert_file"`
		KeyFile  string `yaml:"key_file"`
		HSTS     *bool  `yaml:"hsts"`
	} `yaml:"tls"`
	DataDir string `yaml:"data_dir"`
	Session struct {
		Secret      string    `yaml:"secret"`
		SecretFile  string    `yaml:"secret_file"`
		CookieName  string    `yaml:"cookie_name"`
		Domain      string    `yaml:"domain"`
		IdleTimeout Duration  `yaml:"idle_timeout"`
		Lifetime    Duration  `yaml:"lifetime"`
		RememberMe  *Duration `yaml:"remember_me"`
	} `yaml:"session"`
	Login struct {
		RateLimit struct {
			PerIP   string `yaml:"per_ip"`
			PerUser string `yaml:"per_user"`
		} `yaml:"rate_limit"`
		Lockout struct {
			Attempts *int     `yaml:"attempts"`
			Window   Duration `yaml:"window"`
			Duration Duration `yaml:"duration"`
		} `yaml:"lockout"`
		Hashing struct {
			Concurrency int      `yaml:"concurrency"`
			Queue       int      `yaml:"queue"`
			Wait        Duration `yaml:"wait"`
		} `yaml:"hashing"`
		PasswordMinLength    *int      `yaml:"password_min_length"`
		Registration         bool      `yaml:"registration"`
		RegistrationApproval bool      `yaml:"registration_approval"`
		DefaultRoles         []string  `yaml:"default_roles"`
		TokenTTL             *Duration `yaml:"token_ttl"`
		InviteTTL            *Duration `yaml:"invite_ttl"`
	} `yaml:"login"`
	Headers struct {
		User   *string `yaml:"user"`
		Email  *string `yaml:"email"`
		Groups *string `yaml:"groups"`
		Name   *string `yaml:"name"`
	} `yaml:"headers"`
	TrustedProxies  []string `yaml:"trusted_proxies"`
	UpstreamTimeout Duration `yaml:"upstream_timeout"`
	Branding        struct {
		Title string `yaml:"title"`
		Color string `yaml:"color"`
		Logo  string `yaml:"logo"`
	} `yaml:"branding"`
	Log struct {
		Level  string `yaml:"level"`
		Access *bool  `yaml:"access"`
	} `yaml:"log"`
	Metrics struct {
		Listen string `yaml:"listen"`
	} `yaml:"metrics"`
	Mail struct {
		Mode string `yaml:"mode"`
		From string `yaml:"from"`
		SMTP struct {
			Host         string   `yaml:"host"`
			Port         int      `yaml:"port"`
			Username     string   `yaml:"username"`
			Password     string   `yaml:"password"`
			PasswordFile string   `yaml:"password_file"`
			TLS          string   `yaml:"tls"`
			Timeout      Duration `yaml:"timeout"`
		} `yaml:"smtp"`
	} `yaml:"mail"`
	Apps []appConfig `yaml:"apps"`
}

type appConfig struct {
	Host                 string       `yaml:"host"`
	Upstream             string       `yaml:"upstream"`
	CaseInsensitivePaths bool         `yaml:"case_insensitive_paths"`
	Rules                []ruleConfig `yaml:"rules"`
}

type ruleConfig struct {
	Path      string   `yaml:"path"`
	PathRegex string   `yaml:"path_regex"`
	Methods   []string `yaml:"methods"`
	Networks  []string `yaml:"networks"`
	Allow     string   `yaml:"allow"`
	Roles     []string `yaml:"roles"`
	Users     []string `yaml:"users"`
	Deny      bool     `yaml:"deny"`
}

// Config is a loaded, validated configuration, split into each package's
// own section.
type Config struct {
	File         string
	HTTPSAddr    string
	HTTPAddr     string
	TLS          proxy.TLSConfig
	DataDir      string
	Secret       []byte // nil: generated into DataDir on first start
	Session      loginui.Config
	Proxy        proxy.Config
	UpstreamTime time.Duration
	LogLevel     slog.Level
	MinPassword  int // shortest password the CLI accepts
	AccessLog    bool
	MetricsAddr  string   // host:port of the Prometheus listener; "" for none
	Hosts        []string // every app host, for certificates
	Mail         mailConfig
	Warnings     []*ConfigError // valid but probably not what was meant; validate prints them, serve logs them
}

// DBPath is the bbolt file inside the data directory.
func (c *Config) DBPath() string { return filepath.Join(c.DataDir, "gatehouse.db") }

// SocketPath is the control socket the CLI uses while the gateway runs.
func (c *Config) SocketPath() string { return filepath.Join(c.DataDir, "gatehouse.sock") }

// loadConfig reads, decodes and validates a config file.
func loadConfig(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cannot read config: %w", pathError(err))
	}
	var fc fileConfig
	pos, err := decodeStrict(file, data, &fc)
	if err != nil {
		return nil, err
	}
	v := &validator{file: file, pos: pos, dir: filepath.Dir(file)}
	cfg := v.resolve(&fc)
	if len(v.errs) > 0 {
		slices.SortStableFunc(v.errs, func(a, b error) int { return errLine(a) - errLine(b) })
		return nil, errors.Join(v.errs...)
	}
	slices.SortStableFunc(v.warns, func(a, b *ConfigError) int { return a.Line - b.Line })
	cfg.Warnings = v.warns
	return cfg, nil
}

// errLine is the line a config error points at (0 when none).
func errLine(err error) int {
	var ce *ConfigError
	var pe *policy.Error
	switch {
	case errors.As(err, &ce):
		return ce.Line
	case errors.As(err, &pe):
		return pe.Source.Line
	}
	return 0
}

// pathError drops Go's "open X:" wrapping for a plain sentence.
func pathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

type validator struct {
	file  string
	dir   string
	pos   positions
	errs  []error
	warns []*ConfigError
}

// fail records an error at the line of key path (or its closest parent).
func (v *validator) fail(path, format string, args ...any) {
	v.errs = append(v.errs, v.at(path, fmt.Sprintf(format, args...)))
}

// warn records a warning (a whole sentence that names its keys) at the
// line of key path: the file is valid, but probably not what was meant.
func (v *validator) warn(path, msg string) {
	w := v.at(path, "")
	w.Msg = msg
	v.warns = append(v.warns, w)
}

// at is a message about key path, at its line (or its closest parent's).
func (v *validator) at(path, msg string) *ConfigError {
	line := 0
	for p := path; p != ""; {
		if l, ok := v.pos[p]; ok {
			line = l
			break
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return &ConfigError{File: v.file, Line: line, Msg: path + ": " + msg}
}

// path resolves a file name relative to the config file's directory.
func (v *validator) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(v.dir, p)
}

var (
	tokenRE = regexp.MustCompile(`^[!#$%&'*+\-.^_|~0-9A-Za-z]+$`)
	colorRE = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)
	hostRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)
)

func (v *validator) resolve(fc *fileConfig) *Config {
	cfg := &Config{File: v.file}

	cfg.HTTPSAddr = orDefault(fc.Listen.HTTPS, ":8443")
	cfg.HTTPAddr = orDefault(fc.Listen.HTTP, ":8080")
	for _, kv := range [][2]string{{"listen.https", cfg.HTTPSAddr}, {"listen.http", cfg.HTTPAddr}} {
		key, addr := kv[0], kv[1]
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			v.fail(key, "%q is not host:port (e.g. \":8443\" or \"127.0.0.1:8443\")", addr)
		}
	}

	cfg.DataDir = v.path(orDefault(fc.DataDir, "./data"))

	cfg.TLS = proxy.TLSConfig{Mode: orDefault(fc.TLS.Mode, proxy.TLSSelfSigned), Dir: filepath.Join(cfg.DataDir, "tls")}
	switch cfg.TLS.Mode {
	case proxy.TLSSelfSigned, proxy.TLSOff:
	case proxy.TLSACME:
		cfg.TLS.Email, cfg.TLS.CA = fc.TLS.Email, fc.TLS.CA
		if fc.TLS.Email != "" && !strings.Contains(fc.TLS.Email, "@") {
			v.fail("tls.email", "%q is not an email address", fc.TLS.Email)
		}
		if fc.TLS.CA != "" {
			if u, err := url.Parse(fc.TLS.CA); err != nil || u.Scheme != "https" || u.Host == "" {
				v.fail("tls.ca", "%q is not an https:// ACME directory URL", fc.TLS.CA)
			}
		}
		if fc.TLS.CARoot != "" {
			pem, err := os.ReadFile(v.path(fc.TLS.CARoot))
			if err != nil {
				v.fail("tls.ca_root", "%v", pathError(err))
			} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
				v.fail("tls.ca_root", "%s holds no PEM certificate", fc.TLS.CARoot)
			}
			cfg.TLS.CARoots = pem
		}
	case proxy.TLSFiles:
		cfg.TLS.CertFile, cfg.TLS.KeyFile = v.path(fc.TLS.CertFile), v.path(fc.TLS.KeyFile)
		for _, kv := range [][2]string{{"tls.cert_file", cfg.TLS.CertFile}, {"tls.key_file", cfg.TLS.KeyFile}} {
			key, f := kv[0], kv[1]
			if f == "" {
				v.fail("tls.mode", "mode files needs %s", key)
			} else if _, err := os.Stat(f); err != nil {
				v.fail(key, "%v", pathError(err))
			}
		}
	default:
		v.fail("tls.mode", "%q is not a TLS mode (acme, self-signed, files or off)", cfg.TLS.Mode)
	}
	if cfg.TLS.Mode != proxy.TLSACME {
		for _, kv := range [][2]string{{"tls.email", fc.TLS.Email}, {"tls.ca", fc.TLS.CA}, {"tls.ca_root", fc.TLS.CARoot}} {
			if kv[1] != "" {
				v.fail(kv[0], "only used with mode acme (the mode is %s)", cfg.TLS.Mode)
			}
		}
	}
	if cfg.TLS.Mode != proxy.TLSFiles && (fc.TLS.CertFile != "" || fc.TLS.KeyFile != "") {
		v.fail("tls.cert_file", "cert_file and key_file are only used with mode files")
	}

	v.session(fc, cfg)
	v.login(fc, cfg)
	v.proxy(fc, cfg)
	v.mail(fc, cfg)
	if cfg.Session.Registration && cfg.Mail.Mode == "" {
		v.warn("login.registration", "login.registration without mail: new accounts cannot confirm their email and nobody can reset a password by mail (see docs/configuration.md#mail)")
	}

	switch strings.ToLower(orDefault(fc.Log.Level, "info")) {
	case "debug":
		cfg.LogLevel = slog.LevelDebug
	case "info":
		cfg.LogLevel = slog.LevelInfo
	case "warn":
		cfg.LogLevel = slog.LevelWarn
	case "error":
		cfg.LogLevel = slog.LevelError
	default:
		v.fail("log.level", "%q is not a level (debug, info, warn, error)", fc.Log.Level)
	}
	cfg.AccessLog = fc.Log.Access == nil || *fc.Log.Access
	v.metrics(fc, cfg)
	return cfg
}

// metrics checks the Prometheus listener: off unless set, never on a
// public port (SPEC §10), and a warning when it is reachable from other
// machines, because /metrics asks for no credentials.
func (v *validator) metrics(fc *fileConfig, cfg *Config) {
	addr := fc.Metrics.Listen
	if addr == "" {
		return
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		v.fail("metrics.listen", "%q is not host:port (e.g. \"127.0.0.1:9464\")", addr)
		return
	}
	for _, public := range []struct{ key, addr string }{{"listen.https", cfg.HTTPSAddr}, {"listen.http", cfg.HTTPAddr}} {
		if public.key == "listen.https" && cfg.TLS.Mode == proxy.TLSOff {
			continue
		}
		if _, p, err := net.SplitHostPort(public.addr); err == nil && p == port && port != "0" {
			v.fail("metrics.listen", "%q shares port %s with %s: metrics are never served on a public listener", addr, port, public.key)
			return
		}
	}
	cfg.MetricsAddr = addr
	if !isLoopback(host) {
		v.warn("metrics.listen", fmt.Sprintf("metrics.listen %q is not a loopback address: metrics are unauthenticated; keep this address private (see docs/deployment.md#metrics)", addr))
	}
}

// isLoopback reports whether a listen host reaches this machine only:
// "localhost" or a loopback IP. An empty host, 0.0.0.0 and :: listen on
// every interface.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func (v *validator) session(fc *fileConfig, cfg *Config) {
	s := fc.Session
	if s.Secret != "" && s.SecretFile != "" {
		v.fail("session.secret", "set secret or secret_file, not both")
	}
	secret := s.Secret
	if s.SecretFile != "" {
		data, err := os.ReadFile(v.path(s.SecretFile))
		if err != nil {
			v.fail("session.secret_file", "%v", pathError(err))
		}
		secret = strings.TrimSpace(string(data))
	}
	if secret != "" && len(secret) < 32 {
		v.fail("session.secret", "must be at least 32 characters (e.g. the output of `openssl rand -base64 48`)")
	}
	if secret != "" {
		cfg.Secret = []byte(secret)
	}
	name := orDefault(s.CookieName, "gatehouse")
	if !tokenRE.MatchString(name) || strings.HasPrefix(strings.ToLower(name), "__host-") || strings.HasPrefix(strings.ToLower(name), "__secure-") {
		v.fail("session.cookie_name", "%q is not a plain cookie name (letters, digits, - and _; the __Host- prefix is added for you)", name)
	}
	domain := strings.TrimPrefix(strings.ToLower(s.Domain), ".")
	if domain != "" && (!hostRE.MatchString(domain) || !strings.Contains(domain, ".")) {
		v.fail("session.domain", "%q is not a domain name like example.com", s.Domain)
	}
	cfg.Session = loginui.Config{
		CookieName:  name,
		Domain:      domain,
		IdleTimeout: durationOr(s.IdleTimeout, time.Hour),
		Lifetime:    durationOr(s.Lifetime, 12*time.Hour),
		RememberMe:  720 * time.Hour,
		HSTS:        hsts(cfg.TLS.Mode, fc.TLS.HSTS),
	}
	if s.RememberMe != nil {
		cfg.Session.RememberMe = time.Duration(*s.RememberMe)
		if cfg.Session.RememberMe == 0 {
			cfg.Session.RememberMe = -1 // remember_me: 0 turns the checkbox off
		}
	}
	if cfg.Session.IdleTimeout > cfg.Session.Lifetime {
		v.fail("session.idle_timeout", "is longer than session.lifetime (%s)", cfg.Session.Lifetime)
	}
	b := fc.Branding
	if b.Color != "" && !colorRE.MatchString(b.Color) {
		v.fail("branding.color", "%q is not a colour like #1d4ed8", b.Color)
	}
	if len(b.Title) > 80 {
		v.fail("branding.title", "is longer than 80 characters")
	}
	cfg.Session.Brand = loginui.Brand{Title: b.Title, Color: strings.ToLower(b.Color)}
	if b.Logo != "" {
		data, err := os.ReadFile(v.path(b.Logo))
		switch {
		case err != nil:
			v.fail("branding.logo", "%v", pathError(err))
		case len(data) > 256<<10:
			v.fail("branding.logo", "is larger than 256 KiB")
		}
		types := map[string]string{".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp", ".gif": "image/gif"}
		typ, ok := types[strings.ToLower(filepath.Ext(b.Logo))]
		if !ok {
			v.fail("branding.logo", "must be a .png, .svg, .jpg, .webp or .gif file")
		}
		cfg.Session.Brand.Logo, cfg.Session.Brand.LogoType = data, typ
	}
}

func (v *validator) login(fc *fileConfig, cfg *Config) {
	l := fc.Login
	lim := &cfg.Session.Limits
	for _, r := range []struct {
		key, text string
		dst       *limiter.Rate
	}{{"login.rate_limit.per_ip", l.RateLimit.PerIP, &lim.PerIP}, {"login.rate_limit.per_user", l.RateLimit.PerUser, &lim.PerUser}} {
		if r.text == "" {
			continue
		}
		rate, err := limiter.NewRateFromFormatted(r.text)
		if err != nil || rate.Limit <= 0 {
			v.fail(r.key, "%q is not a rate like 20-M (count-S, -M, -H or -D)", r.text)
			continue
		}
		*r.dst = rate
	}
	if a := l.Lockout.Attempts; a != nil {
		switch {
		case *a < 0:
			v.fail("login.lockout.attempts", "must be 0 (never lock) or more")
		case *a == 0:
			lim.LockoutAttempts = -1
		default:
			lim.LockoutAttempts = *a
		}
	}
	lim.LockoutWindow = time.Duration(l.Lockout.Window)
	lim.LockoutDuration = time.Duration(l.Lockout.Duration)
	if l.Hashing.Concurrency < 0 || l.Hashing.Queue < 0 {
		v.fail("login.hashing", "concurrency and queue cannot be negative")
	}
	lim.HashConcurrency, lim.HashQueue, lim.HashWait = l.Hashing.Concurrency, l.Hashing.Queue, time.Duration(l.Hashing.Wait)
	cfg.MinPassword = 8
	if n := l.PasswordMinLength; n != nil {
		if *n < 8 || *n > 128 {
			v.fail("login.password_min_length", "%d is not between 8 and 128 (NIST SP 800-63B asks for at least 8)", *n)
		} else {
			cfg.MinPassword = *n
		}
	}
	ui := &cfg.Session
	ui.PasswordMinLength = cfg.MinPassword
	ui.Registration, ui.RegistrationApproval = l.Registration, l.RegistrationApproval
	for i, r := range l.DefaultRoles {
		key := fmt.Sprintf("login.default_roles[%d]", i)
		switch {
		case !loginui.ValidRole(r):
			v.fail(key, "%q is not a role name (letters, digits, '.', '_', ':' and '-', at most 64, starting with a letter or digit)", r)
		case r == store.AdminRole:
			v.fail(key, "%q cannot be a default role: everyone who registers would administer the gateway", r)
		case slices.Contains(ui.DefaultRoles, r):
			v.fail(key, "%q is listed twice", r)
		default:
			ui.DefaultRoles = append(ui.DefaultRoles, r)
		}
	}
	slices.Sort(ui.DefaultRoles)
	if len(l.DefaultRoles) > maxDefaultRoles {
		v.fail("login.default_roles", "more than %d roles", maxDefaultRoles)
	}
	ui.TokenTTL = v.ttl("login.token_ttl", l.TokenTTL, time.Hour, 5*time.Minute, 48*time.Hour)
	ui.InviteTTL = v.ttl("login.invite_ttl", l.InviteTTL, 72*time.Hour, time.Hour, 720*time.Hour)
	if !l.Registration {
		if l.RegistrationApproval {
			v.warn("login.registration_approval", "login.registration_approval has no effect while login.registration is off")
		}
		if len(l.DefaultRoles) > 0 {
			v.warn("login.default_roles", "login.default_roles has no effect while login.registration is off (they are the roles of self-registered accounts)")
		}
	}
}

// maxDefaultRoles bounds login.default_roles, as the admin console bounds
// a user's roles.
const maxDefaultRoles = 32

// ttl resolves a link lifetime: def when unset, an error outside lo..hi.
func (v *validator) ttl(key string, set *Duration, def, lo, hi time.Duration) time.Duration {
	if set == nil {
		return def
	}
	d := time.Duration(*set)
	if d < lo || d > hi {
		v.fail(key, "%s is not between %s and %s", fmtDuration(d), fmtDuration(lo), fmtDuration(hi))
		return def
	}
	return d
}

// fmtDuration writes whole hours and minutes the way a config file does
// ("5m", "48h"), not as time.Duration.String ("5m0s", "48h0m0s").
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (v *validator) proxy(fc *fileConfig, cfg *Config) {
	h := proxy.DefaultHeaders
	for _, p := range []struct {
		key string
		set *string
		dst *string
	}{
		{"headers.user", fc.Headers.User, &h.User}, {"headers.email", fc.Headers.Email, &h.Email},
		{"headers.groups", fc.Headers.Groups, &h.Groups}, {"headers.name", fc.Headers.Name, &h.Name},
	} {
		key := p.key
		if p.set == nil {
			continue
		}
		*p.dst = *p.set
		if *p.set != "" && !tokenRE.MatchString(*p.set) {
			v.fail(key, "%q is not a valid header name", *p.set)
		}
	}
	cfg.Proxy.Headers = h
	for i, tp := range fc.TrustedProxies {
		prefix, err := parsePrefix(tp)
		if err != nil {
			v.fail(fmt.Sprintf("trusted_proxies[%d]", i), "%q is not an IP address or CIDR (e.g. 10.0.0.0/8)", tp)
			continue
		}
		cfg.Proxy.TrustedProxies = append(cfg.Proxy.TrustedProxies, prefix)
	}
	cfg.UpstreamTime = durationOr(fc.UpstreamTimeout, 60*time.Second)

	if len(fc.Apps) == 0 {
		v.fail("apps", "no apps: add at least one (host, upstream, rules)")
		return
	}
	var apps []policy.App
	for i, a := range fc.Apps {
		key := fmt.Sprintf("apps[%d]", i)
		if a.Host == "" {
			v.fail(key, "host is required")
		}
		if a.Upstream == "" {
			v.fail(key, "upstream is required (a URL like http://127.0.0.1:3000, or \"echo\")")
		} else if _, err := proxy.ParseUpstream(a.Upstream); err != nil {
			v.fail(key+".upstream", "%q: %v", a.Upstream, err)
		}
		app := policy.App{
			Host:                 a.Host,
			CaseInsensitivePaths: a.CaseInsensitivePaths,
			Source:               policy.Source{File: v.file, Line: v.pos[key]},
		}
		for j, r := range a.Rules {
			app.Rules = append(app.Rules, policy.Rule{
				Path: r.Path, PathRegex: r.PathRegex, Methods: r.Methods, Networks: r.Networks,
				Allow: r.Allow, Roles: r.Roles, Users: r.Users, Deny: r.Deny,
				Source: policy.Source{File: v.file, Line: v.pos[fmt.Sprintf("%s.rules[%d]", key, j)]},
			})
		}
		apps = append(apps, app)
		cfg.Proxy.Apps = append(cfg.Proxy.Apps, proxy.App{Upstream: a.Upstream})
		if a.Host != "" {
			cfg.Hosts = append(cfg.Hosts, strings.ToLower(strings.TrimSuffix(a.Host, ".")))
		}
	}
	p, err := policy.Compile(apps)
	if err != nil {
		v.errs = append(v.errs, err)
		return
	}
	cfg.Proxy.Policy = p
	if cfg.TLS.Mode == proxy.TLSACME {
		names := 0
		for _, h := range cfg.Hosts {
			if net.ParseIP(h) == nil {
				names++
			}
		}
		if names == 0 {
			v.fail("tls.mode", "mode acme needs at least one app host that is a DNS name (certificates are not issued for IP addresses)")
		}
	}
}

func (v *validator) mail(fc *fileConfig, cfg *Config) {
	m, s := fc.Mail, fc.Mail.SMTP
	smtpSet := s.Host != "" || s.Port != 0 || s.Username != "" || s.Password != "" || s.PasswordFile != "" || s.TLS != "" || s.Timeout != 0
	switch m.Mode {
	case "":
		if m.From != "" || smtpSet {
			v.fail("mail.mode", "from and smtp are only used with mode smtp or file (leave mail out to send no mail)")
		}
		return
	case mailModeSMTP, mailModeFile:
	default:
		v.fail("mail.mode", "%q is not a mail mode (smtp or file; leave it out to send no mail)", m.Mode)
		return
	}
	cfg.Mail = mailConfig{Mode: m.Mode, From: m.From}
	if m.From == "" && m.Mode == mailModeFile {
		cfg.Mail.From = "Gatehouse <gatehouse@localhost>"
	}
	if m.From == "" && m.Mode == mailModeSMTP {
		v.fail("mail.mode", "mode smtp needs from (the sender address, e.g. \"Gatehouse <noreply@example.com>\")")
	} else if a, err := mail.ParseAddress(cfg.Mail.From); err != nil || strings.Count(a.Address, "@") != 1 {
		v.fail("mail.from", "%q is not an address like noreply@example.com or \"Gatehouse <noreply@example.com>\"", m.From)
	}
	if m.Mode == mailModeFile {
		if smtpSet {
			v.fail("mail.smtp", "only used with mode smtp")
		}
		return
	}
	c := &cfg.Mail
	c.Host, c.Username, c.Password = s.Host, s.Username, s.Password
	c.TLS = orDefault(s.TLS, smtpSTARTTLS)
	c.Timeout = durationOr(s.Timeout, 10*time.Second)
	host := strings.ToLower(s.Host)
	switch {
	case s.Host == "":
		v.fail("mail.mode", "mode smtp needs smtp.host")
	case net.ParseIP(host) == nil && !hostRE.MatchString(host):
		v.fail("mail.smtp.host", "%q is not a host name or IP address (the port goes in mail.smtp.port)", s.Host)
	}
	switch c.TLS {
	case smtpSTARTTLS, smtpTLS, smtpOpportunistic, smtpNone:
	default:
		v.fail("mail.smtp.tls", "%q is not a TLS policy (starttls, tls, opportunistic or none)", s.TLS)
	}
	c.Port = s.Port
	if c.Port == 0 {
		c.Port = defaultSMTPPort(c.TLS)
	} else if c.Port < 1 || c.Port > 65535 {
		v.fail("mail.smtp.port", "%d is not a port (1-65535)", s.Port)
	}
	if s.Password != "" && s.PasswordFile != "" {
		v.fail("mail.smtp.password", "set password or password_file, not both")
	}
	if s.PasswordFile != "" {
		data, err := os.ReadFile(v.path(s.PasswordFile))
		if err != nil {
			v.fail("mail.smtp.password_file", "%v", pathError(err))
			return
		}
		c.Password = strings.TrimRight(string(data), "\r\n")
	}
	if (c.Username == "") != (c.Password == "") {
		v.fail("mail.smtp.username", "username and password go together (set both, or neither to send without AUTH)")
	}
	if c.TLS == smtpNone && c.Username != "" && host != "localhost" && host != "127.0.0.1" && host != "::1" {
		v.fail("mail.smtp.tls", "none would send the password unencrypted to %s: use starttls or tls (none with a password is only for a relay on localhost)", s.Host)
	}
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func durationOr(d Duration, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return time.Duration(d)
}

// hsts decides Strict-Transport-Security: on by default with certificates
// browsers trust (acme, files), off with self-signed ones (a browser cannot
// click through a warning for an HSTS host), never without TLS.
func hsts(mode string, set *bool) bool {
	switch {
	case mode == proxy.TLSOff:
		return false
	case set != nil:
		return *set
	default:
		return mode == proxy.TLSACME || mode == proxy.TLSFiles
	}
}
