package loginui

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/gatehouse-auth/gatehouse/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/style.css
var styleCSS string

// Brand is how the pages look.
type Brand struct {
	Title    string // default "Gatehouse"
	Color    string // "#rrggbb", default "#1d4ed8"
	Logo     []byte // optional image, served at /.gatehouse/static/logo
	LogoType string // its media type
}

// Config is the session and page configuration. Zero values are the
// documented defaults.
type Config struct {
	CookieName  string        // default "gatehouse"; sent as "__Host-"+CookieName when Domain is ""
	Domain      string        // e.g. "example.com": one sign-in for every subdomain
	IdleTimeout time.Duration // default 1h
	Lifetime    time.Duration // default 12h, absolute
	RememberMe  time.Duration // default 720h; < 0 hides the "keep me signed in" checkbox
	Secrets     [][]byte      // [0] signs new cookies (>= 32 bytes); the rest still decode
	HSTS        bool          // Strict-Transport-Security on gateway pages
	Brand       Brand
	Limits      Limits // sign-in rate limits, lockout and the hashing gate

	// PasswordMinLength is how many characters a new password needs at
	// least; 0 (or anything below 8, NIST SP 800-63B's floor) means 8.
	PasswordMinLength int

	// Self-registration and mail links.
	Registration         bool          // /.gatehouse/register is open; default off
	RegistrationApproval bool          // new accounts wait for an admin's approval (store.User.Pending)
	DefaultRoles         []string      // roles a self-registered account gets
	TokenTTL             time.Duration // lifetime of reset and verification links; default 1h
	InviteTTL            time.Duration // lifetime of invitation links; default 72h
}

// Deps are what the UI needs from the rest of the gateway.
type Deps struct {
	DB        *store.DB
	Log       *slog.Logger
	Now       func() time.Time                 // nil: time.Now
	ClientIP  func(r *http.Request) netip.Addr // trusted-proxy-aware client address
	IsAppHost func(host string) bool           // a configured app host (follows reloads)
	Mailer    Mailer                           // nil: no mail (no reset by mail, no invitations, no verification)
	Metrics   Metrics                          // nil: sign-ins are not counted
}

// UI serves the gateway's pages and checks sessions.
type UI struct {
	cfg        Config
	db         *store.DB
	log        *slog.Logger
	now        func() time.Time
	clientIP   func(*http.Request) netip.Addr
	isAppHost  func(string) bool
	cookie     string
	csrfCookie string
	codecs     []securecookie.Codec
	decoded    decodedCookies
	guard      *guard
	csrfKey    []byte
	pages      map[string]*template.Template
	css        []byte
	handler    http.Handler
	mailer     Mailer         // nil: no mail
	metrics    Metrics        // nil: none
	background sync.WaitGroup // mails sent after the answer (see sendLater)
}

var colorRE = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// New checks cfg and builds the UI.
func New(cfg Config, deps Deps) (*UI, error) {
	if deps.DB == nil || deps.Log == nil {
		return nil, errors.New("loginui: DB and Log are required")
	}
	if cfg.CookieName == "" {
		cfg.CookieName = "gatehouse"
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = time.Hour
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = 12 * time.Hour
	}
	if cfg.RememberMe == 0 {
		cfg.RememberMe = 720 * time.Hour
	}
	if cfg.Brand.Title == "" {
		cfg.Brand.Title = "Gatehouse"
	}
	if cfg.Brand.Color == "" {
		cfg.Brand.Color = "#1d4ed8"
	}
	if !colorRE.MatchString(cfg.Brand.Color) {
		return nil, fmt.Errorf("brand colour %q is not #rrggbb", cfg.Brand.Color)
	}
	if len(cfg.Secrets) == 0 || len(cfg.Secrets[0]) < 32 {
		return nil, errors.New("a session secret of at least 32 bytes is required")
	}
	for _, s := range cfg.Secrets[1:] {
		if len(s) < 32 {
			return nil, errors.New("every previous session secret must be at least 32 bytes")
		}
	}
	if cfg.IdleTimeout < 0 || cfg.Lifetime < 0 {
		return nil, errors.New("the session idle timeout and lifetime must be positive")
	}
	cfg.Domain = strings.TrimPrefix(strings.ToLower(cfg.Domain), ".")
	if strings.ContainsAny(cfg.Domain, ":/ \t;,=") {
		return nil, fmt.Errorf("session domain %q is not a domain name like example.com", cfg.Domain)
	}
	if len(cfg.Brand.Logo) > 0 && !strings.HasPrefix(cfg.Brand.LogoType, "image/") {
		return nil, fmt.Errorf("the logo's media type %q is not an image type", cfg.Brand.LogoType)
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.InviteTTL == 0 {
		cfg.InviteTTL = 72 * time.Hour
	}
	if cfg.TokenTTL < 0 || cfg.InviteTTL < 0 {
		return nil, errors.New("the lifetimes of mailed links must be positive")
	}
	for _, role := range cfg.DefaultRoles {
		if !roleRE.MatchString(role) {
			return nil, fmt.Errorf("default role %q is not a role name (letters, digits, '.', '_', ':' or '-')", role)
		}
		if role == store.AdminRole {
			return nil, errors.New("the admin role cannot be a default role: everyone who registers would administer the gateway")
		}
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	u := &UI{
		cfg: cfg, db: deps.DB, log: deps.Log, now: deps.Now, clientIP: deps.ClientIP, isAppHost: deps.IsAppHost,
		cookie:     cfg.CookieName,
		csrfCookie: "__Host-" + cfg.CookieName + "-csrf",
		csrfKey:    deriveKey(cfg.Secrets[0], "csrf", 32),
		pages:      map[string]*template.Template{},
		guard:      newGuard(cfg.Limits),
		mailer:     deps.Mailer,
		metrics:    deps.Metrics,
	}
	if cfg.Domain == "" {
		// __Host- makes browsers refuse the cookie unless it is Secure,
		// host-only and Path=/: a sibling subdomain cannot plant or
		// overwrite it (RFC 6265bis, cookie prefixes).
		u.cookie = "__Host-" + cfg.CookieName
	}
	longest := max(cfg.Lifetime, cfg.RememberMe) + time.Hour
	u.codecs = newCodecs(cfg.Secrets, longest)
	for _, name := range []string{"login", "logout", "signedout", "forbidden", "error"} {
		t, err := template.ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("loginui: template %s: %w", name, err)
		}
		u.pages[name] = t
	}
	var css bytes.Buffer
	err := texttemplate.Must(texttemplate.New("css").Parse(styleCSS)).Execute(&css, struct{ Accent, OnAccent string }{
		cfg.Brand.Color, onAccent(cfg.Brand.Color),
	})
	if err != nil {
		return nil, fmt.Errorf("loginui: style: %w", err)
	}
	u.css = css.Bytes()
	u.handler = u.routes()
	return u, nil
}

// onAccent picks black or white text for a background colour, whichever
// contrasts more (WCAG relative luminance).
func onAccent(hex string) string {
	lum := 0.0
	for i, w := range []float64{0.2126, 0.7152, 0.0722} {
		v, _ := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
		c := float64(v) / 255
		if c <= 0.03928 {
			c /= 12.92
		} else {
			c = math.Pow((c+0.055)/1.055, 2.4)
		}
		lum += w * c
	}
	if (1.05)/(lum+0.05) >= (lum+0.05)/0.05 {
		return "#ffffff"
	}
	return "#000000"
}

// CookieName is the session cookie's name as sent (with __Host- when no
// domain is set).
func (u *UI) CookieName() string { return u.cookie }

// CookieNames lists every cookie the gateway sets; the proxy removes them
// from the Cookie header an app receives.
func (u *UI) CookieNames() []string { return []string{u.cookie, u.csrfCookie} }

// Handler serves everything under /.gatehouse/ but healthz.
func (u *UI) Handler() http.Handler { return u.handler }

// routes is the whole map of the gateway's pages.
func (u *UI) routes() http.Handler {
	mux := http.NewServeMux()
	// Cross-origin POSTs are refused before any handler runs (Sec-Fetch-Site
	// and Origin); the token then covers browsers too old to send them.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.log.Warn("cross-origin form post refused", "path", r.URL.Path, "origin", r.Header.Get("Origin"))
		u.Error(w, r, http.StatusForbidden)
	}))
	post := func(h http.HandlerFunc) http.Handler { return cop.Handler(u.formBody(h)) }

	mux.HandleFunc("GET /.gatehouse/login", u.loginPage)
	mux.Handle("POST /.gatehouse/login", post(u.login))
	mux.HandleFunc("GET /.gatehouse/logout", u.logoutPage)
	mux.Handle("POST /.gatehouse/logout", post(u.logout))
	u.adminRoutes(mux, post)
	u.accountRoutes(mux, post)
	u.mailRoutes(mux, post)
	mux.HandleFunc("GET /.gatehouse/static/style.css", u.style)
	mux.HandleFunc("GET /.gatehouse/static/logo", u.logo)
	mux.HandleFunc(notFoundPattern, func(w http.ResponseWriter, r *http.Request) { u.Error(w, r, http.StatusNotFound) })
	return u.methodNotAllowed(mux)
}

// notFoundPattern catches every path under the prefix that no page serves.
const notFoundPattern = "/"

// methodNotAllowed answers 405 with Allow for a page asked with the wrong
// method; any other path falls through to the mux and its 404 page.
func (u *UI) methodNotAllowed(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == notFoundPattern {
			var allow []string
			for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
				probe := r.WithContext(r.Context())
				probe.Method = m
				if _, p := mux.Handler(probe); p != notFoundPattern && p != "" {
					allow = append(allow, m)
				}
			}
			if len(allow) > 0 {
				w.Header().Set("Allow", strings.Join(allow, ", "))
				u.Error(w, r, http.StatusMethodNotAllowed)
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// formBody bounds a form post to 16 KiB and parses it; a larger body gets
// 413, a malformed one 400.
func (u *UI) formBody(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if err := r.ParseForm(); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				u.Error(w, r, http.StatusRequestEntityTooLarge)
				return
			}
			u.Error(w, r, http.StatusBadRequest)
			return
		}
		next(w, r)
	}
}

func (u *UI) style(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/css; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=3600")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(u.css)
}

func (u *UI) logo(w http.ResponseWriter, r *http.Request) {
	if len(u.cfg.Brand.Logo) == 0 {
		u.Error(w, r, http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", u.cfg.Brand.LogoType)
	h.Set("Cache-Control", "public, max-age=3600")
	h.Set("X-Content-Type-Options", "nosniff")
	// An SVG can hold script: opened directly, it runs sandboxed with nothing.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
	_, _ = w.Write(u.cfg.Brand.Logo)
}
