package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/proxy"
)

// syncBuffer collects the gateway's log lines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logLines decodes the JSON log lines whose msg is msg.
func (b *syncBuffer) logLines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// testGateway is a real gateway (the same newServer/run as `gatehouse
// serve`) on loopback ports chosen by the kernel.
type testGateway struct {
	t       *testing.T
	file    string
	dir     string
	srv     *server
	logs    *syncBuffer
	cancel  context.CancelFunc
	done    chan error
	https   string // https://localhost:PORT
	http    string // http://localhost:PORT
	roots   *x509.CertPool
	stopped bool
}

const e2eRules = `
    rules:
      - { path: /public/**, allow: public }
      - { path: /admin/**, roles: [admin] }
      - { path: /**, allow: authenticated }
`

// writeE2EConfig writes a config for a gateway in dir with the given apps
// section (or the echo app on localhost).
func writeE2EConfig(t *testing.T, dir, apps string) string {
	t.Helper()
	if apps == "" {
		apps = "apps:\n  - host: localhost\n    upstream: echo\n" + e2eRules
	}
	text := fmt.Sprintf(`listen: { https: "127.0.0.1:0", http: "127.0.0.1:0" }
tls: { mode: self-signed }
data_dir: %s
%s`, filepath.Join(dir, "data"), apps)
	f := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func startGateway(t *testing.T, file string) *testGateway {
	t.Helper()
	cfg, err := loadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv, err := newServer(cfg, newLogger(logs, -4), logs, time.Now)
	if err != nil {
		t.Fatalf("newServer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &testGateway{t: t, file: file, dir: filepath.Dir(file), srv: srv, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { g.done <- srv.run(ctx) }()
	g.http = "http://localhost:" + port(srv.ls.HTTP.Addr().String())
	t.Cleanup(g.stop)
	if srv.ls.HTTPS == nil { // tls.mode off
		return g
	}
	g.https = "https://localhost:" + port(srv.ls.HTTPS.Addr().String())
	if cfg.TLS.Mode != proxy.TLSSelfSigned { // the test knows which roots to trust
		return g
	}
	pem, err := os.ReadFile(filepath.Join(cfg.DataDir, "tls", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	g.roots = x509.NewCertPool()
	g.roots.AppendCertsFromPEM(pem)
	return g
}

func port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

func (g *testGateway) stop() {
	if g.stopped {
		return
	}
	g.stopped = true
	g.cancel()
	select {
	case err := <-g.done:
		if err != nil {
			g.t.Errorf("gateway stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		g.t.Error("gateway did not stop")
	}
}

// client is a browser-like client: trusts the gateway's CA, keeps cookies,
// does not follow redirects (tests look at them).
func (g *testGateway) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Jar:       jar,
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: g.roots}},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

func do(t *testing.T, c *http.Client, method, url string, body io.Reader, headers ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs in through the real form and returns where it sent us.
func (g *testGateway) signIn(t *testing.T, c *http.Client, user, password, rd string) (*http.Response, string) {
	t.Helper()
	_, page := do(t, c, "GET", g.https+"/.gatehouse/login?rd="+url.QueryEscape(rd), nil, "Accept", "text/html")
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the sign-in page:\n%s", page)
	}
	form := url.Values{"username": {user}, "password": {password}, "csrf": {m[1]}, "rd": {rd}}
	return do(t, c, "POST", g.https+"/.gatehouse/login", strings.NewReader(form.Encode()),
		"Content-Type", "application/x-www-form-urlencoded")
}

// runCLI runs the gatehouse command line in-process.
func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func mustCLI(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, out, errOut := runCLI(t, stdin, args...)
	if code != 0 {
		t.Fatalf("gatehouse %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func TestFirstRun(t *testing.T) {
	t.Setenv("GATEHOUSE_ADMIN_PASSWORD", "")
	dir := t.TempDir()
	g := startGateway(t, writeE2EConfig(t, dir, ""))

	for _, f := range []string{"data/gatehouse.db", "data/session.key", "data/tls/ca.crt", "data/tls/leaf.crt"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("first run did not create %s: %v", f, err)
		}
	}
	created := g.logs.logLines(t, "created the admin account; sign in and change this password (it is not shown again)")
	if len(created) != 1 {
		t.Fatalf("admin password logged %d times, want once; logs:\n%s", len(created), g.logs)
	}
	password, _ := created[0]["password"].(string)
	if len(password) < 16 {
		t.Fatalf("bootstrap password %q is too short", password)
	}

	c := g.client()
	resp, _ := do(t, c, "GET", g.http+"/hello?x=1", nil)
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != g.https+"/hello?x=1" {
		t.Errorf("plain HTTP: %d Location %q, want 308 to %s/hello?x=1", resp.StatusCode, resp.Header.Get("Location"), g.https)
	}
	resp, _ = do(t, c, "GET", g.https+"/hello?x=1", nil, "Accept", "text/html")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/.gatehouse/login?rd=%2Fhello%3Fx%3D1" {
		t.Fatalf("anonymous: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = g.signIn(t, c, "admin", password, "/hello?x=1")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/hello?x=1" {
		t.Fatalf("sign-in: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := do(t, c, "GET", g.https+"/hello?x=1", nil, "Accept", "application/json", "Remote-User", "mallory")
	if resp.StatusCode != 200 {
		t.Fatalf("signed in: %d %s", resp.StatusCode, body)
	}
	var echo struct {
		Method, Path string
		Headers      map[string][]string
	}
	if err := json.Unmarshal([]byte(body), &echo); err != nil {
		t.Fatalf("echo: %v: %s", err, body)
	}
	if echo.Path != "/hello?x=1" || fmt.Sprint(echo.Headers["Remote-User"]) != "[admin]" || fmt.Sprint(echo.Headers["Remote-Groups"]) != "[admin]" {
		t.Errorf("echo saw path %q Remote-User %v Remote-Groups %v", echo.Path, echo.Headers["Remote-User"], echo.Headers["Remote-Groups"])
	}
	for name := range echo.Headers {
		if strings.Contains(strings.ToLower(name), "cookie") && strings.Contains(fmt.Sprint(echo.Headers[name]), "gatehouse") {
			t.Errorf("the app received the gateway cookie in %s", name)
		}
	}
	if strings.Count(g.logs.String(), password) != 1 {
		t.Error("the bootstrap password appears in the logs more than once")
	}
}

func TestAdminPasswordFromEnvironment(t *testing.T) {
	t.Setenv("GATEHOUSE_ADMIN_PASSWORD", "correct horse battery staple")
	g := startGateway(t, writeE2EConfig(t, t.TempDir(), ""))
	if strings.Contains(g.logs.String(), "correct horse") {
		t.Error("the password from the environment was logged")
	}
	resp, _ := g.signIn(t, g.client(), "admin", "correct horse battery staple", "/")
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-in with the environment password: %d", resp.StatusCode)
	}
}

// TestBehindATLSTerminator: with tls.mode off the gateway serves plain
// HTTP for a terminator in front. Cookies stay Secure and __Host-, the
// app hears https from the trusted terminator, and the same headers from
// anyone else are not believed.
func TestBehindATLSTerminator(t *testing.T) {
	t.Setenv("GATEHOUSE_ADMIN_PASSWORD", "terminated-password-1")
	dir := t.TempDir()
	text := fmt.Sprintf(`listen: { http: "127.0.0.1:0" }
tls: { mode: off }
trusted_proxies: [127.0.0.1/32]
data_dir: %s
apps:
  - host: localhost
    upstream: echo
%s`, filepath.Join(dir, "data"), e2eRules)
	f := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, f)
	c := g.client()
	_, page := do(t, c, "GET", g.http+"/.gatehouse/login", nil, "Accept", "text/html", "X-Forwarded-Proto", "https")
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no sign-in form:\n%s", page)
	}
	// The cookie jar keeps Secure cookies only for https URLs; send them by hand.
	var cookies []string
	for _, ck := range c.Jar.Cookies(mustURL(t, "https://localhost/")) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	form := url.Values{"username": {"admin"}, "password": {"terminated-password-1"}, "csrf": {m[1]}, "rd": {"/hello"}}
	resp, _ := do(t, c, "POST", g.http+"/.gatehouse/login", strings.NewReader(form.Encode()),
		"Content-Type", "application/x-www-form-urlencoded", "X-Forwarded-Proto", "https",
		"Origin", "https://"+strings.TrimPrefix(g.http, "http://"), "Cookie", strings.Join(cookies, "; "))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/hello" {
		t.Fatalf("sign-in behind the terminator: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "__Host-gatehouse" {
			session = ck
		}
	}
	if session == nil || !session.Secure || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode {
		t.Fatalf("session cookie behind the terminator: %+v", session)
	}
	if resp.Header.Get("Strict-Transport-Security") != "" {
		t.Error("HSTS sent by a gateway without TLS")
	}
	_, echo := do(t, c, "GET", g.http+"/hello", nil, "X-Forwarded-Proto", "https", "Cookie", "__Host-gatehouse="+session.Value)
	if !strings.Contains(echo, `"X-Forwarded-Proto":["https"]`) || !strings.Contains(echo, `"Remote-User":["admin"]`) {
		t.Errorf("the app did not hear https and the user from the terminator:\n%s", echo)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
