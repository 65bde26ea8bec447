package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse-auth/gatehouse/policy"
	"github.com/gatehouse-auth/gatehouse/store"
)

// Prefix is the reserved path prefix of the gateway's own pages on every
// protected host. Requests under it are never proxied.
const Prefix = "/.gatehouse/"

// EchoUpstream is the upstream name of the built-in echo app, which shows
// the method, path and headers it received.
const EchoUpstream = "echo"

// Authenticator identifies the caller: (nil, nil) for anonymous; an error
// only for a technical failure, never for a bad or expired cookie.
type Authenticator interface {
	Authenticate(r *http.Request) (*store.User, error)
}

// Pages renders the gateway's HTML answers for browsers.
type Pages interface {
	Forbidden(w http.ResponseWriter, r *http.Request, user *store.User, rule string)
	Error(w http.ResponseWriter, r *http.Request, status int)
}

// Headers names the identity headers sent upstream; "" disables one.
type Headers struct {
	User   string // canonical username
	Email  string
	Groups string // roles, comma-separated
	Name   string // display name
}

// DefaultHeaders are the identity header names used when the config does
// not name them (the names Authelia and many apps already understand).
var DefaultHeaders = Headers{User: "Remote-User", Email: "Remote-Email", Groups: "Remote-Groups", Name: "Remote-Name"}

// App is the proxy's part of one configured app: where its traffic goes.
// Apps[i] belongs to the policy's app i.
type App struct {
	Upstream string // EchoUpstream, or an http(s) URL with no path, query or fragment
}

// Config is the reloadable part of the proxy's configuration. Swap it in
// with Gateway.Swap; requests in flight finish under the config they began with.
type Config struct {
	Policy         *policy.Policy // required
	Apps           []App          // one per policy app, same order
	Headers        Headers
	TrustedProxies []netip.Prefix // peers whose X-Forwarded-For/Forwarded/X-Forwarded-Proto/-Host are believed
}

// Deps are the proxy's collaborators, wired by cmd.
type Deps struct {
	Auth        Authenticator
	Pages       Pages
	UI          http.Handler // the gateway's own pages under Prefix
	CookieNames []string     // the gateway's cookies, removed from the Cookie header sent upstream
	Log         *slog.Logger // errors and warnings
	AccessLog   io.Writer    // one JSON line per request, one Write each; nil for none
	Scheme      string       // "https" when clients reach the gateway over TLS, else "http"
	// UpstreamTimeout bounds the wait from the end of a request to the
	// first byte of the app's answer (504 after it); the body then streams
	// for as long as it takes. Default 60s.
	UpstreamTimeout time.Duration
	// Transport, when set, carries requests to upstreams other than echo
	// (benchmarks use it to leave the network out); default: a pooled
	// http.Transport tuned for many keep-alive connections to few apps.
	Transport http.RoundTripper
	Metrics   Metrics // counts every request; nil for none
}

// Gateway is the http.Handler that serves every protected host.
type Gateway struct {
	deps      Deps
	transport *upstreamTransport
	upstream  http.RoundTripper
	echo      *echoServer
	buffers   bufferPool
	access    *accessLog // nil when off
	state     atomic.Pointer[state]
}

// bufferPool recycles the 32 KiB buffers ReverseProxy copies bodies
// through; without it every response allocates one. A channel, unlike a
// sync.Pool of slices, recycles without allocating.
type bufferPool chan []byte

func (p bufferPool) Get() []byte {
	select {
	case b := <-p:
		return b
	default:
		return make([]byte, 32<<10)
	}
}

func (p bufferPool) Put(b []byte) {
	select {
	case p <- b:
	default:
	}
}

// state is one immutable, compiled configuration.
type state struct {
	policy   *policy.Policy
	apps     []*httputil.ReverseProxy
	headers  Headers
	identity []string // normalized identity header names (lower case, "_" as "-")
	trusted  []netip.Prefix
}

// New builds a Gateway from its first config.
func New(cfg Config, deps Deps) (*Gateway, error) {
	if deps.Auth == nil || deps.Pages == nil || deps.UI == nil || deps.Log == nil {
		return nil, errors.New("proxy: Auth, Pages, UI and Log are required")
	}
	if deps.Scheme == "" {
		deps.Scheme = "https"
	}
	if deps.UpstreamTimeout <= 0 {
		deps.UpstreamTimeout = 60 * time.Second
	}
	g := &Gateway{deps: deps, echo: newEchoServer(deps.UpstreamTimeout), buffers: make(bufferPool, 256), access: newAccessLog(deps.AccessLog)}
	g.transport = newUpstreamTransport(deps.UpstreamTimeout)
	g.upstream = g.transport
	if deps.Transport != nil {
		g.upstream = deps.Transport
	}
	if err := g.Swap(cfg); err != nil {
		return nil, err
	}
	return g, nil
}

// Swap atomically replaces the configuration. On error the old one keeps serving.
func (g *Gateway) Swap(cfg Config) error {
	if cfg.Policy == nil {
		return errors.New("proxy: a policy is required")
	}
	if n := len(cfg.Policy.Apps()); n != len(cfg.Apps) {
		return fmt.Errorf("proxy: %d apps for a policy with %d", len(cfg.Apps), n)
	}
	h := cfg.Headers
	for _, name := range []*string{&h.User, &h.Email, &h.Groups, &h.Name} {
		*name = http.CanonicalHeaderKey(*name)
	}
	st := &state{
		policy:  cfg.Policy,
		headers: h,
		trusted: cfg.TrustedProxies,
	}
	for _, h := range []string{cfg.Headers.User, cfg.Headers.Email, cfg.Headers.Groups, cfg.Headers.Name} {
		if h != "" {
			st.identity = append(st.identity, normalizeHeaderName(h))
		}
	}
	for i, app := range cfg.Apps {
		rp, err := g.reverseProxy(st, app)
		if err != nil {
			return fmt.Errorf("proxy: app %s: %w", cfg.Policy.Apps()[i].Host, err)
		}
		st.apps = append(st.apps, rp)
	}
	g.state.Store(st)
	return nil
}

// ParseUpstream checks an upstream setting: EchoUpstream or an absolute
// http(s) URL naming only scheme, host and port.
func ParseUpstream(s string) (*url.URL, error) {
	if s == EchoUpstream {
		return &url.URL{Scheme: "http", Host: "echo.gatehouse.internal"}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("upstream is not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errors.New(`upstream must be "echo" or an http:// or https:// URL`)
	}
	if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("upstream must be scheme://host[:port] with no path, query or credentials")
	}
	u.Path = ""
	return u, nil
}

func (g *Gateway) reverseProxy(st *state, app App) (*httputil.ReverseProxy, error) {
	target, err := ParseUpstream(app.Upstream)
	if err != nil {
		return nil, err
	}
	transport := g.upstream
	if app.Upstream == EchoUpstream {
		transport = g.echo.transport
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			g.rewrite(st, target, pr)
		},
		Transport:    transport,
		BufferPool:   g.buffers,
		ErrorHandler: g.upstreamError,
		ErrorLog:     slog.NewLogLogger(g.deps.Log.Handler(), slog.LevelWarn),
	}, nil
}

// reqInfo carries what the gateway decided from ServeHTTP into Rewrite.
type reqInfo struct {
	user    *store.User
	target  policy.Target
	client  netip.Addr
	trusted bool // the peer is a trusted proxy
	// upstreamFailed: the gateway answered 502/504 itself (unreachable or
	// slow app), for the upstream-errors metric.
	upstreamFailed bool
	status         int
	decision       policy.Decision
}

type ctxKey struct{}

// ServeHTTP answers one request: gateway page, redirect to sign-in, 401,
// 403, or the app's response.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := g.state.Load()
	rs := &struct { // one allocation for both
		sw   statusWriter
		info reqInfo
	}{sw: statusWriter{ResponseWriter: w}}
	sw, info := &rs.sw, &rs.info
	info.client, info.trusted = clientIP(r, st.trusted)
	g.serve(st, sw, r, info)
	g.accessLog(r, sw, info, start)
	if g.deps.Metrics != nil {
		g.observe(st, r, info, sw.status, time.Since(start))
	}
}

func (g *Gateway) serve(st *state, w *statusWriter, r *http.Request, info *reqInfo) {
	target, err := policy.ParseTarget(r.RequestURI)
	if err != nil {
		g.fail(w, r, http.StatusBadRequest)
		return
	}
	info.target = target
	if target.Path == "/.gatehouse/healthz" {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
		return
	}
	app, ok := st.policy.Lookup(r.Host)
	if !ok {
		g.fail(w, r, http.StatusMisdirectedRequest)
		return
	}
	if strings.HasPrefix(target.Path, Prefix) || target.Path == strings.TrimSuffix(Prefix, "/") {
		g.deps.UI.ServeHTTP(w, withPath(r, target))
		return
	}
	user, err := g.deps.Auth.Authenticate(r)
	if err != nil {
		g.deps.Log.Error("authentication failed", "err", err)
		g.fail(w, r, http.StatusInternalServerError)
		return
	}
	info.user = user
	req := policy.Request{Host: r.Host, Method: r.Method, Path: target.Path, ClientIP: info.client}
	var ident policy.Identity
	if user != nil {
		ident = policy.Identity{Name: user.Username, Roles: user.Roles}
		req.User = &ident
	}
	d := st.policy.DecideIn(app, &req)
	info.decision = d
	switch {
	case d.Action == policy.Allow:
		rp := st.apps[app]
		rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, info)))
	case d.Action == policy.Login && user == nil:
		g.login(w, r, target)
	default:
		g.forbidden(w, r, user, d)
	}
}

// withPath hands the gateway's pages the canonical path, so their router
// sees the same path the gateway checked.
func withPath(r *http.Request, t policy.Target) *http.Request {
	if r.URL.Path == t.Path && r.URL.RawPath == "" {
		return r
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = t.Path
	r2.URL.RawPath = ""
	return r2
}

// rewrite builds the upstream request: canonical path, scrubbed headers,
// identity, forwarding headers. It runs after hop-by-hop removal, so a
// client's Connection header cannot delete what it sets.
func (g *Gateway) rewrite(st *state, target *url.URL, pr *httputil.ProxyRequest) {
	info, _ := pr.In.Context().Value(ctxKey{}).(*reqInfo)
	out := pr.Out
	out.URL.Scheme = target.Scheme
	out.URL.Host = target.Host
	// Opaque is written to the request line verbatim: the upstream reads
	// exactly the path the policy decided on, with no re-escaping.
	out.URL.Opaque = info.target.Forward
	out.URL.Path, out.URL.RawPath = "", ""
	out.URL.RawQuery = info.target.Query
	out.URL.ForceQuery = info.target.HasQuery && info.target.Query == ""
	out.Host = pr.In.Host

	// h2c smuggling: a client must never upgrade the upstream connection
	// to HTTP/2 and talk to the app past the gateway.
	if strings.EqualFold(out.Header.Get("Upgrade"), "h2c") {
		out.Header.Del("Upgrade")
		out.Header.Del("Connection")
	}
	scrubHeaders(out.Header, st.identity, info.trusted)
	stripCookies(out.Header, g.deps.CookieNames)
	setForwarded(pr, info, g.deps.Scheme)
	if u := info.user; u != nil {
		setIdentity(out.Header, st.headers, u)
	}
}

// upstreamError renders 502/504 and logs the cause; the client never sees
// Go error text.
func (g *Gateway) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		// The client went away; nobody is left to answer.
		if sw, ok := w.(*statusWriter); ok {
			sw.status = 499
		}
		return
	}
	status := upstreamStatus(err)
	if info, ok := r.Context().Value(ctxKey{}).(*reqInfo); ok {
		info.upstreamFailed = true
	}
	g.deps.Log.Warn("upstream error", "host", r.Host, "status", status, "err", err)
	g.fail(w, r, status)
}

// upstreamStatus maps an upstream failure to the status the client sees.
func upstreamStatus(err error) int {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// Close releases idle upstream connections and stops the echo app.
func (g *Gateway) Close() {
	g.transport.CloseIdleConnections()
	g.echo.close()
}
