package proxy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/policy"
	"github.com/gatehouse-auth/gatehouse/store"
)

// fakeAuth signs in whoever sends "Cookie: test-session=<username>".
type fakeAuth struct {
	users map[string]*store.User
}

func (f *fakeAuth) Authenticate(r *http.Request) (*store.User, error) {
	c, err := r.Cookie(testCookie)
	if err != nil {
		return nil, nil
	}
	return f.users[c.Value], nil
}

const testCookie = "test-session"

// fakePages writes a recognisable text for each page.
type fakePages struct{}

func (fakePages) Forbidden(w http.ResponseWriter, r *http.Request, user *store.User, rule string) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusForbidden)
	fmt.Fprintf(w, "<p>forbidden page rule=%s</p>", rule)
}

func (fakePages) Error(w http.ResponseWriter, r *http.Request, status int) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<p>error page %d</p>", status)
}

// seen is what the upstream received.
type seen struct {
	Method     string
	RequestURI string
	Host       string
	Header     http.Header
}

// upstream is a real HTTP app that records every request it gets.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newUpstream(t *testing.T, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.reqs = append(u.reqs, seen{r.Method, r.RequestURI, r.Host, r.Header.Clone()})
		u.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		fmt.Fprint(w, "app says hi")
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.reqs...)
}

func (u *upstream) last(t *testing.T) seen {
	t.Helper()
	r := u.requests()
	if len(r) == 0 {
		t.Fatal("upstream received nothing")
	}
	return r[len(r)-1]
}

var testUsers = map[string]*store.User{
	"alice": {Username: "alice", Email: "alice@example.com", EmailVerified: true, DisplayName: "Alice Liddell", Roles: []string{"admin", "staff"}},
	"bob":   {Username: "bob", Email: "bob@example.com", EmailVerified: true, Roles: []string{"staff"}},
	"eve":   {Username: "eve", Email: "ceo@example.com", Roles: []string{"staff"}}, // registered, never confirmed
}

// testRules protect app.test: public assets, an admin area, a read-only
// API for staff, everything else for anyone signed in.
func testRules() []policy.Rule {
	src := func(n int) policy.Source { return policy.Source{File: "test.yaml", Line: n} }
	return []policy.Rule{
		{Path: "/public/**", Allow: policy.AllowPublic, Source: src(1)},
		{Path: "/admin/**", Roles: []string{"admin"}, Source: src(2)},
		{Path: "/api/**", Methods: []string{"GET"}, Roles: []string{"staff"}, Source: src(3)},
		{Path: "/api/**", Deny: true, Source: src(4)},
		{Path: "/**", Allow: policy.AllowAuthenticated, Source: src(5)},
	}
}

type gatewayOpts struct {
	trusted []netip.Prefix
	timeout time.Duration
	headers *Headers
	access  io.Writer // the access log; nil for none
}

// newGateway serves a real Gateway on a real listener in front of up.
func newGateway(t *testing.T, up *upstream, opts gatewayOpts) (*Gateway, *httptest.Server) {
	t.Helper()
	p, err := policy.Compile([]policy.App{{Host: "app.test", Rules: testRules()}})
	if err != nil {
		t.Fatal(err)
	}
	headers := DefaultHeaders
	if opts.headers != nil {
		headers = *opts.headers
	}
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "gateway page %s", r.URL.Path)
	})
	g, err := New(Config{
		Policy:         p,
		Apps:           []App{{Upstream: up.URL}},
		Headers:        headers,
		TrustedProxies: opts.trusted,
	}, Deps{
		Auth:            &fakeAuth{users: testUsers},
		Pages:           fakePages{},
		UI:              ui,
		CookieNames:     []string{testCookie, testCookie + "-csrf"},
		Log:             slog.New(slog.DiscardHandler),
		Scheme:          "https",
		UpstreamTimeout: opts.timeout,
		AccessLog:       opts.access,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return g, srv
}

// raw sends a request exactly as written (no client-side cleaning) and
// returns the response.
func raw(t *testing.T, addr, request string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading response to %q: %v", request, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func get(target, host string, headers ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\n", target, host)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	return b.String()
}

func addr(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

func TestSpoofedIdentityHeadersNeverReachTheApp(t *testing.T) {
	spoofs := []string{
		"Remote-User: mallory", "remote-user: mallory", "REMOTE-USER: mallory", "Remote_User: mallory",
		"remote_user: mallory", "REMOTE_USER: mallory", "Remote-user: mallory", "rEmOtE_uSeR: mallory",
		"Remote-Email: m@evil.example", "remote_email: m@evil.example", "Remote-Groups: admin",
		"REMOTE_GROUPS: admin", "Remote-Name: Mallory", "remote_name: Mallory",
	}
	for _, who := range []string{"", "bob"} {
		for _, spoof := range spoofs {
			name := "anonymous on a public path"
			target := "/public/x"
			hdrs := []string{spoof}
			if who != "" {
				name = "signed in as " + who
				target = "/home"
				hdrs = append(hdrs, "Cookie: "+testCookie+"="+who)
			}
			t.Run(name+"/"+spoof, func(t *testing.T) {
				up := newUpstream(t, nil)
				_, gw := newGateway(t, up, gatewayOpts{})
				resp, _ := raw(t, addr(gw), get(target, "app.test", hdrs...))
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status = %d, want 200", resp.StatusCode)
				}
				got := up.last(t).Header
				for name, values := range got {
					for _, v := range values {
						if strings.Contains(strings.ToLower(v), "mallory") || strings.Contains(v, "evil.example") || (strings.EqualFold(normalizeHeaderName(name), "remote-groups") && v == "admin") {
							t.Errorf("app received spoofed %s: %q", name, v)
						}
					}
				}
				if who == "" {
					for name := range got {
						if strings.HasPrefix(normalizeHeaderName(name), "remote-") {
							t.Errorf("anonymous request reached the app with identity header %s", name)
						}
					}
				} else if got.Get("Remote-User") != who {
					t.Errorf("Remote-User = %q, want %q", got.Get("Remote-User"), who)
				}
			})
		}
	}
}

func TestIdentityHeadersSetFromTheStore(t *testing.T) {
	up := newUpstream(t, nil)
	_, gw := newGateway(t, up, gatewayOpts{})
	resp, _ := raw(t, addr(gw), get("/home", "app.test", "Cookie: "+testCookie+"=alice"))
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	h := up.last(t).Header
	want := map[string]string{
		"Remote-User": "alice", "Remote-Email": "alice@example.com",
		"Remote-Groups": "admin,staff", "Remote-Name": "Alice Liddell",
	}
	for k, v := range want {
		if got := h.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want [%q]", k, got, v)
		}
	}
}

// An address its owner never confirmed is not vouched for upstream, and a
// spoofed one from the client is still removed.
func TestUnconfirmedEmailIsNotSentUpstream(t *testing.T) {
	up := newUpstream(t, nil)
	_, gw := newGateway(t, up, gatewayOpts{})
	resp, _ := raw(t, addr(gw), get("/home", "app.test", "Cookie: "+testCookie+"=eve", "Remote-Email: ceo@example.com"))
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	h := up.last(t).Header
	if got := h.Values("Remote-Email"); len(got) != 0 {
		t.Errorf("Remote-Email = %q for an unconfirmed address", got)
	}
	if h.Get("Remote-User") != "eve" {
		t.Errorf("Remote-User = %q", h.Get("Remote-User"))
	}
}

func TestCustomAndDisabledHeaderNames(t *testing.T) {
	up := newUpstream(t, nil)
	hdrs := Headers{User: "X-Auth-User", Groups: ""}
	_, gw := newGateway(t, up, gatewayOpts{headers: &hdrs})
	resp, _ := raw(t, addr(gw), get("/home", "app.test", "Cookie: "+testCookie+"=alice", "x_auth_user: mallory", "Remote-User: fine-now"))
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	h := up.last(t).Header
	if got := h.Values("X-Auth-User"); len(got) != 1 || got[0] != "alice" {
		t.Errorf("X-Auth-User = %q, want [alice]", got)
	}
	if _, ok := h["X_auth_user"]; ok {
		t.Error("spoofed x_auth_user reached the app")
	}
	if h.Get("Remote-Groups") != "" {
		t.Error("a disabled header was sent")
	}
}

func TestConnectionHeaderCannotRemoveIdentity(t *testing.T) {
	up := newUpstream(t, nil)
	_, gw := newGateway(t, up, gatewayOpts{})
	resp, _ := raw(t, addr(gw), get("/home", "app.test",
		"Cookie: "+testCookie+"=bob", "Connection: Remote-User, Remote-Groups, X-Forwarded-For"))
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	h := up.last(t).Header
	if h.Get("Remote-User") != "bob" || h.Get("Remote-Groups") != "staff" {
		t.Errorf("identity removed by Connection header: user=%q groups=%q", h.Get("Remote-User"), h.Get("Remote-Groups"))
	}
	if h.Get("X-Forwarded-For") == "" {
		t.Error("X-Forwarded-For removed by Connection header")
	}
}

func TestForwardingHeadersFromUntrustedClientsAreDropped(t *testing.T) {
	spoofed := []string{
		"X-Forwarded-For: 10.9.9.9", "X-Forwarded-Host: evil.example", "X-Forwarded-Proto: http",
		"x_forwarded_for: 10.9.9.9", "Forwarded: for=10.9.9.9;host=evil.example", "X-Real-IP: 10.9.9.9",
		"X-Original-URL: /admin/secret", "X-Rewrite-URL: /admin/secret", "x_original_url: /admin/secret",
		"X-Forwarded-Server: evil.example", "X-HTTP-Method-Override: DELETE", "True-Client-IP: 10.9.9.9",
	}
	up := newUpstream(t, nil)
	_, gw := newGateway(t, up, gatewayOpts{})
	resp, _ := raw(t, addr(gw), get("/home", "app.test", append(spoofed, "Cookie: "+testCookie+"=bob")...))
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	h := up.last(t).Header
	for name, values := range h {
		for _, v := range values {
			if strings.Contains(v, "10.9.9.9") || strings.Contains(v, "evil.example") || strings.Contains(v, "/admin/secret") || v == "DELETE" {
				t.Errorf("app received spoofed %s: %q", name, v)
			}
		}
	}
	if got := h.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want 127.0.0.1", got)
	}
	if got := h.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("X-Forwarded-Proto = %q, want https", got)
	}
	if got := h.Get("X-Forwarded-Host"); got != "app.test" {
		t.Errorf("X-Forwarded-Host = %q, want app.test", got)
	}
}

func TestForwardingHeadersFromTrustedProxiesAreKept(t *testing.T) {
	up := newUpstream(t, nil)
	_, gw := newGateway(t, up, gatewayOpts{trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	resp, _ := raw(t, addr(gw), get("/home", "app.test", "Cookie: "+testCookie+"=bob",
		"X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: http", "X-Forwarded-Host: wiki.example.com"))
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	h := up.last(t).Header
	if got := h.Get("X-Forwarded-For"); got != "203.0.113.7, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", got)
	}
	if got := h.Get("X-Real-Ip"); got != "203.0.113.7" {
		t.Errorf("X-Real-Ip = %q, want the client behind the trusted proxy", got)
	}
	if got := h.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("X-Forwarded-Proto = %q", got)
	}
	if got := h.Get("X-Forwarded-Host"); got != "wiki.example.com" {
		t.Errorf("X-Forwarded-Host = %q", got)
	}
}

func TestGatewayCookieNeverReachesTheApp(t *testing.T) {
	up := newUpstream(t, nil)
	_, gw := newGateway(t, up, gatewayOpts{})
	resp, _ := raw(t, addr(gw), get("/home", "app.test",
		"Cookie: theme=dark; "+testCookie+"=bob; JSESSIONID=abc123", "Cookie: "+testCookie+"-csrf=zzz; lang=en"))
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	got := strings.Join(up.last(t).Header.Values("Cookie"), "; ")
	if strings.Contains(got, testCookie) {
		t.Errorf("app received the gateway cookie: %q", got)
	}
	for _, c := range []string{"theme=dark", "JSESSIONID=abc123", "lang=en"} {
		if !strings.Contains(got, c) {
			t.Errorf("app cookie %s lost: %q", c, got)
		}
	}
}

func TestAnswersWithoutAccess(t *testing.T) {
	up := newUpstream(t, nil)
	_, gw := newGateway(t, up, gatewayOpts{})
	tests := []struct {
		name     string
		req      string
		status   int
		location string
		body     string
	}{
		{"browser without session", get("/docs/a?x=1&y=2", "app.test", "Accept: text/html,*/*"), 302, "/.gatehouse/login?rd=%2Fdocs%2Fa%3Fx%3D1%26y%3D2", ""},
		{"api without session", get("/docs/a", "app.test", "Accept: application/json"), 401, "", msgAuthRequired},
		{"browser POST without session", "POST /docs/a HTTP/1.1\r\nHost: app.test\r\nAccept: text/html\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 401, "", msgAuthRequired},
		{"browser without role", get("/admin/x", "app.test", "Accept: text/html", "Cookie: "+testCookie+"=bob"), 403, "", "<p>forbidden page rule=test.yaml:2</p>"},
		{"api without role", get("/admin/x", "app.test", "Cookie: "+testCookie+"=bob"), 403, "", msgForbidden},
		{"denied method", "DELETE /api/x HTTP/1.1\r\nHost: app.test\r\nCookie: " + testCookie + "=bob\r\nConnection: close\r\n\r\n", 403, "", msgForbidden},
		{"unknown host", get("/public/x", "other.test"), 421, "", `{"error":"misdirected request"}`},
		{"unknown host browser", get("/public/x", "other.test", "Accept: text/html"), 421, "", "<p>error page 421</p>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(up.requests())
			resp, body := raw(t, addr(gw), tc.req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d (body %q)", resp.StatusCode, tc.status, body)
			}
			if got := resp.Header.Get("Location"); got != tc.location {
				t.Errorf("Location = %q, want %q", got, tc.location)
			}
			if tc.body != "" && strings.TrimSpace(body) != tc.body {
				t.Errorf("body = %q, want %q", body, tc.body)
			}
			if tc.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Gatehouse ") {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
			if n := len(up.requests()); n != before {
				t.Errorf("upstream received %d requests, want none", n-before)
			}
		})
	}
}

func TestUpstreamFailuresShowNoGoErrors(t *testing.T) {
	t.Run("down", func(t *testing.T) {
		up := newUpstream(t, nil)
		_, gw := newGateway(t, up, gatewayOpts{})
		up.Close()
		resp, body := raw(t, addr(gw), get("/public/x", "app.test"))
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("status = %d, want 502", resp.StatusCode)
		}
		if strings.Contains(body, "dial") || strings.Contains(body, "refused") || strings.Contains(body, "127.0.0.1") {
			t.Errorf("body leaks the Go error: %q", body)
		}
		resp, body = raw(t, addr(gw), get("/public/x", "app.test", "Accept: text/html"))
		if resp.StatusCode != 502 || body != "<p>error page 502</p>" {
			t.Errorf("browser got %d %q, want the 502 page", resp.StatusCode, body)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { <-release })
		defer close(release)
		_, gw := newGateway(t, up, gatewayOpts{timeout: 200 * time.Millisecond})
		resp, body := raw(t, addr(gw), get("/public/slow", "app.test"))
		if resp.StatusCode != http.StatusGatewayTimeout {
			t.Fatalf("status = %d, want 504", resp.StatusCode)
		}
		if strings.Contains(body, "timeout awaiting") {
			t.Errorf("body leaks the Go error: %q", body)
		}
	})
}

func TestCanonicalPathIsWhatTheAppReceives(t *testing.T) {
	tests := []struct{ target, want string }{
		{"/public/./a/../b", "/public/b"},
		{"/public//x", "/public/x"},
		{"/public/%7Euser/%41", "/public/~user/A"},
		{"/public/app;jsessionid=ABC/x?q=1", "/public/app;jsessionid=ABC/x?q=1"},
		{"/public/x?next=/admin/secret", "/public/x?next=/admin/secret"},
		{"/public/caf%c3%a9", "/public/caf%C3%A9"},
		{"/public/a%20b", "/public/a%20b"},
		{"/public/x?", "/public/x?"},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			up := newUpstream(t, nil)
			_, gw := newGateway(t, up, gatewayOpts{})
			resp, _ := raw(t, addr(gw), get(tc.target, "app.test"))
			if resp.StatusCode != 200 {
				t.Fatalf("status = %d", resp.StatusCode)
			}
			if got := up.last(t).RequestURI; got != tc.want {
				t.Errorf("app received %q, want %q", got, tc.want)
			}
		})
	}
}

func TestH2CUpgradeIsDropped(t *testing.T) {
	up := newUpstream(t, nil)
	_, gw := newGateway(t, up, gatewayOpts{})
	resp, _ := raw(t, addr(gw), "GET /public/x HTTP/1.1\r\nHost: app.test\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	h := up.last(t).Header
	if h.Get("Upgrade") != "" || h.Get("Http2-Settings") != "" {
		t.Errorf("app received an h2c upgrade: %v", h)
	}
}

func TestWebSocketPassesThrough(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want upgrade", 400)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-User: %s\r\n\r\n", r.Header.Get("Remote-User"))
		_ = rw.Flush()
		line, _ := rw.ReadString('\n')
		fmt.Fprintf(rw, "echo:%s", line)
		_ = rw.Flush()
	})
	_, gw := newGateway(t, up, gatewayOpts{})
	conn, err := net.Dial("tcp", addr(gw))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /chat HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nCookie: %s=bob\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", testCookie)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("X-User") != "bob" {
		t.Fatalf("got %d user %q, want 101 for bob", resp.StatusCode, resp.Header.Get("X-User"))
	}
	fmt.Fprint(conn, "ping\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo:ping\n" {
		t.Errorf("through the tunnel: %q, %v", line, err)
	}
}

func TestStreamingResponsesAreNotBuffered(t *testing.T) {
	release := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		http.NewResponseController(w).Flush()
		<-release
		fmt.Fprint(w, "data: second\n\n")
	})
	_, gw := newGateway(t, up, gatewayOpts{})
	req, _ := http.NewRequest("GET", gw.URL+"/public/events", nil)
	req.Host = "app.test"
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	got := make([]byte, len("data: first\n\n"))
	if _, err := io.ReadFull(resp2.Body, got); err != nil || string(got) != "data: first\n\n" {
		t.Fatalf("first event: %q, %v", got, err)
	}
	close(release)
	rest, _ := io.ReadAll(resp2.Body)
	if string(rest) != "data: second\n\n" {
		t.Errorf("second event: %q", rest)
	}
}

func TestRequestBodiesStream(t *testing.T) {
	status, read := uploadThrough(t, gatewayOpts{}, 64, 64<<10, 0)
	if status != 200 || read != fmt.Sprint(64*64<<10) {
		t.Errorf("got %d, app read %s bytes, want 200 and %d", status, read, 64*64<<10)
	}
}

// uploadThrough streams n pieces of size bytes, pause apart, through a
// gateway to an app that counts what it reads. It returns the status and
// the count the app answered with.
func uploadThrough(t *testing.T, opts gatewayOpts, n, size int, pause time.Duration) (int, string) {
	t.Helper()
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		read, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, read)
	})
	_, gw := newGateway(t, up, opts)
	pr, pw := io.Pipe()
	go func() {
		for range n {
			_, _ = pw.Write(make([]byte, size))
			time.Sleep(pause)
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", gw.URL+"/public/upload", pr)
	req.Host = "app.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(body)
}

func TestGatewayPagesAreNeverProxied(t *testing.T) {
	up := newUpstream(t, nil)
	_, gw := newGateway(t, up, gatewayOpts{})
	tests := []struct {
		target string
		ours   bool
	}{
		{"/.gatehouse/login", true},
		{"/.gatehouse/%6cogin", true},
		{"/public/../.gatehouse/login", true},
		{"/public/x?next=/.gatehouse/login", false},
		{"/public/.gatehouse/login", false},
		{"/public/x/.gatehouse", false},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			before := len(up.requests())
			resp, body := raw(t, addr(gw), get(tc.target, "app.test"))
			if resp.StatusCode != 200 {
				t.Fatalf("status = %d", resp.StatusCode)
			}
			proxied := len(up.requests()) > before
			if tc.ours && (proxied || body != "gateway page /.gatehouse/login") {
				t.Errorf("got proxied=%v body=%q, want the gateway page", proxied, body)
			}
			if !tc.ours && !proxied {
				t.Errorf("not proxied (body %q)", body)
			}
		})
	}
}

func TestHealthzOnAnyHost(t *testing.T) {
	up := newUpstream(t, nil)
	_, gw := newGateway(t, up, gatewayOpts{})
	resp, body := raw(t, addr(gw), get("/.gatehouse/healthz", "10.0.0.5:8443"))
	var v map[string]string
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &v) != nil || v["status"] != "ok" {
		t.Errorf("healthz = %d %q", resp.StatusCode, body)
	}
}

func TestEchoShowsWhatTheAppReceives(t *testing.T) {
	p, err := policy.Compile([]policy.App{{Host: "localhost", Rules: []policy.Rule{{Path: "/**", Allow: policy.AllowAuthenticated}}}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(Config{Policy: p, Apps: []App{{Upstream: EchoUpstream}}, Headers: DefaultHeaders},
		Deps{Auth: &fakeAuth{users: testUsers}, Pages: fakePages{}, UI: http.NotFoundHandler(), Log: slog.New(slog.DiscardHandler), CookieNames: []string{testCookie}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g)
	defer srv.Close()
	resp, body := raw(t, addr(srv), get("/hello/./world?x=1", "localhost:8443", "Cookie: "+testCookie+"=alice", "Remote-User: mallory"))
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d: %s", resp.StatusCode, body)
	}
	var got echoRequest
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("echo body %q: %v", body, err)
	}
	if got.Method != "GET" || got.Path != "/hello/world?x=1" || got.Host != "localhost:8443" {
		t.Errorf("echo saw %s %s host %s", got.Method, got.Path, got.Host)
	}
	if u := got.Headers["Remote-User"]; len(u) != 1 || u[0] != "alice" {
		t.Errorf("echo saw Remote-User %q, want [alice]", u)
	}
	resp, body = raw(t, addr(srv), get("/x", "localhost", "Cookie: "+testCookie+"=alice", "Accept: text/html"))
	if resp.StatusCode != 200 || !strings.Contains(body, "<code>Remote-User</code>") || !strings.Contains(body, "<code>alice</code>") {
		t.Errorf("echo HTML page: %d %q", resp.StatusCode, body)
	}
}
