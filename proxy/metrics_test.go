package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/policy"
	"github.com/gatehouse-auth/gatehouse/store"
)

// fakeMetrics records what the gateway reports.
type fakeMetrics struct {
	mu        sync.Mutex
	requests  []string // "app outcome"
	upstreams []string // apps
}

func (m *fakeMetrics) Request(app, outcome string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d <= 0 {
		outcome += " (no duration)"
	}
	m.requests = append(m.requests, app+" "+outcome)
}

func (m *fakeMetrics) UpstreamError(app string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.upstreams = append(m.upstreams, app)
}

func (m *fakeMetrics) take() (requests, upstreams []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	requests, upstreams = m.requests, m.upstreams
	m.requests, m.upstreams = nil, nil
	return requests, upstreams
}

// failingAuth is a store that cannot be read.
type failingAuth struct{ fakeAuth }

func (f *failingAuth) Authenticate(r *http.Request) (*store.User, error) {
	if r.Header.Get("X-Test-Store") == "down" {
		return nil, errors.New("store down")
	}
	return f.fakeAuth.Authenticate(r)
}

// TestMetricsOutcomes: every kind of answer is reported once, with the
// app's configured host pattern (never the Host the client sent) and an
// outcome from the fixed list.
func TestMetricsOutcomes(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/app-502" {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	p, err := policy.Compile([]policy.App{
		{Host: "app.test", Rules: testRules()},
		{Host: "*.wild.test", Rules: testRules()},
		{Host: "norules.test"},
		{Host: "down.test", Rules: testRules()},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeMetrics{}
	g, err := New(Config{
		Policy:  p,
		Apps:    []App{{Upstream: up.URL}, {Upstream: up.URL}, {Upstream: up.URL}, {Upstream: down.URL}},
		Headers: DefaultHeaders,
	}, Deps{
		Auth:    &failingAuth{fakeAuth{users: testUsers}},
		Pages:   fakePages{},
		UI:      http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "page") }),
		Log:     slog.New(slog.DiscardHandler),
		Metrics: m,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)

	for _, tc := range []struct {
		name, host, target string
		headers            []string
		status             int
		want               string
		upstream           bool
	}{
		{"public path", "app.test", "/public/a.css", nil, 200, "app.test allowed", false},
		{"signed in", "app.test", "/home", []string{"Cookie", "test-session=bob"}, 200, "app.test allowed", false},
		{"wildcard app by its pattern", "Grafana.Wild.Test:8443", "/home", []string{"Cookie", "test-session=bob"}, 200, "*.wild.test allowed", false},
		{"anonymous", "app.test", "/home", nil, 401, "app.test login", false},
		{"role missing", "app.test", "/admin/x", []string{"Cookie", "test-session=bob"}, 403, "app.test denied", false},
		{"deny rule", "app.test", "/api/x?q=1", []string{"Cookie", "test-session=bob", "X-Method", "POST"}, 403, "app.test denied", false},
		{"no rule matches", "norules.test", "/x", []string{"Cookie", "test-session=bob"}, 403, "norules.test denied", false},
		{"bad target", "app.test", "/a%2fb", nil, 400, " bad_request", false},
		{"unknown host", "evil.test", "/home", nil, 421, " misdirected", false},
		{"gateway page under an unknown host", "evil.test", "/.gatehouse/login", nil, 421, " misdirected", false},
		{"gateway page", "app.test", "/.gatehouse/login", nil, 200, "app.test gateway_page", false},
		{"healthz on any host", "evil.test", "/.gatehouse/healthz", nil, 200, " gateway_page", false},
		{"store down", "app.test", "/home", []string{"Cookie", "test-session=bob", "X-Test-Store", "down"}, 500, "app.test error", false},
		{"upstream down", "down.test", "/home", []string{"Cookie", "test-session=bob"}, 502, "down.test allowed", true},
		{"the app's own 502", "app.test", "/app-502", []string{"Cookie", "test-session=bob"}, 502, "app.test allowed", false}, // the app's answer, not a gateway failure
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.target, nil)
			r.Host = tc.host
			for i := 0; i+1 < len(tc.headers); i += 2 {
				if tc.headers[i] == "X-Method" {
					r.Method = tc.headers[i+1]
					continue
				}
				r.Header.Set(tc.headers[i], tc.headers[i+1])
			}
			rec := httptest.NewRecorder()
			g.ServeHTTP(rec, r)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			requests, upstreams := m.take()
			if want := []string{tc.want}; !slices.Equal(requests, want) {
				t.Errorf("reported %q, want %q", requests, want)
			}
			var wantUp []string
			if tc.upstream {
				wantUp = []string{tc.want[:len(tc.want)-len(" allowed")]}
			}
			if !slices.Equal(upstreams, wantUp) {
				t.Errorf("upstream errors %q, want %q", upstreams, wantUp)
			}
		})
	}
}

// TestMetricsOutcomesAreTheDocumentedOnes keeps the list that
// implementations prepare in step with the constants.
func TestMetricsOutcomesAreTheDocumentedOnes(t *testing.T) {
	want := []string{"allowed", "denied", "login", "bad_request", "misdirected", "gateway_page", "error"}
	if !slices.Equal(Outcomes, want) {
		t.Errorf("Outcomes = %q, want %q", Outcomes, want)
	}
}
