package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-auth/gatehouse/loginui"
	"github.com/gatehouse-auth/gatehouse/proxy"
	"github.com/gatehouse-auth/gatehouse/store"
)

// cannedUpstream answers every request at once, so the benchmark measures
// the gateway's own work and not a network round trip.
type cannedUpstream struct{}

func (cannedUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: http.NoBody, ContentLength: 0, Request: r}, nil
}

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkSignedInRequest is the gateway's work for one request of a
// signed-in user: cookie → session → user → policy → header rewrite →
// reverse proxy, against a canned upstream.
func BenchmarkSignedInRequest(b *testing.B) {
	gw, r, _ := signedInGateway(b, false)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		gw.ServeHTTP(w, r)
	}
}

// BenchmarkBareReverseProxy is the yardstick for BenchmarkSignedInRequest:
// the same request through a plain httputil.ReverseProxy, with no
// authentication, against the same canned upstream. The difference
// between the two is the gateway's own work; on a machine whose speed
// drifts, compare the two from the same run.
func BenchmarkBareReverseProxy(b *testing.B) {
	target, _ := url.Parse("http://127.0.0.1:9")
	rp := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
		Transport:  cannedUpstream{},
		BufferPool: make(oneBuffer, 32<<10),
	}
	_, r, _ := signedInGateway(b, false)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		rp.ServeHTTP(w, r)
	}
}

// oneBuffer hands out the same copy buffer every time: enough for a
// benchmark that serves one request at a time, and free, like the
// gateway's pool once warm.
type oneBuffer []byte

func (o oneBuffer) Get() []byte { return o }
func (oneBuffer) Put([]byte)    {}

// signedInGateway is the benchmark's gateway (with Prometheus metrics when
// withMetrics) and a request of a signed-in user that it allows.
func signedInGateway(b testing.TB, withMetrics bool) (http.Handler, *http.Request, *metrics) {
	f := filepath.Join(b.TempDir(), "config.yaml")
	text := `data_dir: ` + filepath.Join(b.TempDir(), "data") + `
apps:
  - host: app.example.com
    upstream: http://127.0.0.1:9
    rules:
      - { path: /static/**, allow: public }
      - { path: /admin/**, roles: [admin] }
      - { path: /api/**, methods: [GET], roles: [reader, admin] }
      - { path: /**, allow: authenticated }
`
	if err := writeFile(f, text); err != nil {
		b.Fatal(err)
	}
	cfg, err := loadConfig(f)
	if err != nil {
		b.Fatal(err)
	}
	db, err := store.Open(filepath.Join(b.TempDir(), "g.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	hash, _ := store.HashPassword("bench-password")
	_ = db.CreateUser(store.User{Username: "alice", Email: "alice@example.com", DisplayName: "Alice", PasswordHash: hash, Roles: []string{"reader", "staff"}})
	log := slog.New(slog.DiscardHandler)
	var m *metrics
	var requests proxy.Metrics // nil, not a nil *metrics, when off
	if withMetrics {
		m = newMetrics("bench", log)
		m.setApps(cfg.Proxy.Policy)
		requests = m
	}
	sc := cfg.Session
	sc.Secrets = [][]byte{[]byte("0123456789abcdef0123456789abcdef-bench")}
	ui, err := loginui.New(sc, loginui.Deps{DB: db, Log: log, IsAppHost: func(string) bool { return true }})
	if err != nil {
		b.Fatal(err)
	}
	gw, err := proxy.New(cfg.Proxy, proxy.Deps{Auth: ui, Pages: ui, UI: ui.Handler(), CookieNames: ui.CookieNames(),
		Log: log, AccessLog: io.Discard, Transport: cannedUpstream{}, Metrics: requests})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(gw.Close)
	cookie := signInForBench(b, gw)

	r := httptest.NewRequest("GET", "https://app.example.com/api/v1/items/42?expand=owner", nil)
	r.RemoteAddr = "192.0.2.10:51000"
	r.Header.Set("Cookie", cookie+"; theme=dark")
	r.Header.Set("Accept", "application/json")
	r.Header.Set("User-Agent", "bench")
	return gw, r, m
}

// signInForBench signs in through the real form and returns the session cookie pair.
func signInForBench(b testing.TB, gw http.Handler) string {
	rec := httptest.NewRecorder()
	gw.ServeHTTP(rec, httptest.NewRequest("GET", "https://app.example.com/.gatehouse/login", nil))
	m := csrfField.FindStringSubmatch(rec.Body.String())
	if m == nil {
		b.Fatal("no token")
	}
	form := url.Values{"username": {"alice"}, "password": {"bench-password"}, "csrf": {m[1]}}
	req := httptest.NewRequest("POST", "https://app.example.com/.gatehouse/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range rec.Result().Cookies() {
		req.AddCookie(c)
	}
	rec = httptest.NewRecorder()
	gw.ServeHTTP(rec, req)
	for _, c := range rec.Result().Cookies() {
		if c.Name == "__Host-gatehouse" {
			return c.Name + "=" + c.Value
		}
	}
	body, _ := io.ReadAll(rec.Body)
	b.Fatalf("sign-in failed: %d %s", rec.Code, body)
	return ""
}
