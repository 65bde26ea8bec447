package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
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
)

// fileConfig mirrors the YAML file. Zero values mean "use the default".
type fileConfig struct {
	Listen struct {
		HTTPS string `yaml:"https"`
		HTTP  string `yaml:"http"`
	} `yaml:"listen"`
	TLS struct {
		Mode     string `yaml:"mode"`
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
		PasswordMinLength int `yaml:"password_min_length"`
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
	Hosts        []string // every app host, for certificates
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
	file string
	dir  string
	pos  positions
	errs []error
}

// fail records an error at the line of key path (or its closest parent).
func (v *validator) fail(path, format string, args ...any) {
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
	v.errs = append(v.errs, &ConfigError{File: v.file, Line: line, Msg: path + ": " + fmt.Sprintf(format, args...)})
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
		v.fail("tls.mode", "%q is not a TLS mode (self-signed, files or off)", cfg.TLS.Mode)
	}
	if cfg.TLS.Mode != proxy.TLSFiles && (fc.TLS.CertFile != "" || fc.TLS.KeyFile != "") {
		v.fail("tls.cert_file", "cert_file and key_file are only used with mode files")
	}

	v.session(fc, cfg)
	v.login(fc, cfg)
	v.proxy(fc, cfg)

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
	return cfg
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
		HSTS:        cfg.TLS.Mode != proxy.TLSOff && (fc.TLS.HSTS == nil || *fc.TLS.HSTS),
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
	if n := l.PasswordMinLength; n != 0 {
		if n < 8 || n > 64 {
			v.fail("login.password_min_length", "must be between 8 and 64 (NIST SP 800-63B asks for at least 8)")
		}
		cfg.MinPassword = n
	}
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
