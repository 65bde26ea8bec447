package loginui

import (
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ulule/limiter/v3"
)

// fakeMetrics records the sign-in results reported.
type fakeMetrics struct {
	mu      sync.Mutex
	results []string
}

func (m *fakeMetrics) SignIn(result string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.results = append(m.results, result)
}

func (m *fakeMetrics) take() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.results
	m.results = nil
	return r
}

// withMetrics is f with a UI that reports to m, on the same store and clock.
func withMetrics(t *testing.T, f *fixture, cfg Config, m Metrics) *fixture {
	t.Helper()
	cfg.Secrets = [][]byte{[]byte(secret)}
	ui, err := New(cfg, Deps{DB: f.db, Log: f.ui.log, Now: f.clock.now, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{ui: ui, db: f.db, clock: f.clock, logs: f.logs, mu: f.mu}
}

// TestSignInMetrics: each sign-in is reported once, with the result the
// page hides (a locked account looks like a wrong password to the caller).
func TestSignInMetrics(t *testing.T) {
	m := &fakeMetrics{}
	f := withMetrics(t, newFixture(t), Config{Limits: Limits{
		PerIP:   limiter.Rate{Period: time.Minute, Limit: 10},
		PerUser: limiter.Rate{Period: time.Minute, Limit: 100},
	}}, m)
	type step struct {
		login, password string
		status          int
		want            string
	}
	steps := []step{
		{"alice", "alice-password", http.StatusSeeOther, SignInSuccess},
		{"alice", "wrong-password", http.StatusUnauthorized, SignInFailure},
		{"nobody", "wrong-password", http.StatusUnauthorized, SignInFailure},
		{"dora", "dora-password", http.StatusUnauthorized, SignInFailure}, // disabled
	}
	for range 5 { // the fifth failure locks bob's account
		steps = append(steps, step{"bob", "wrong-password", http.StatusUnauthorized, SignInFailure})
	}
	steps = append(steps,
		step{"bob", "bob-password", http.StatusUnauthorized, SignInLockedOut},
		step{"alice", "alice-password", http.StatusTooManyRequests, SignInRateLimited}, // the 11th attempt from this address
	)
	for i, s := range steps {
		if resp := f.browser(t).attempt(s.login, s.password); resp.StatusCode != s.status {
			t.Fatalf("step %d (%s): status %d, want %d", i, s.login, resp.StatusCode, s.status)
		}
		if got := m.take(); !slices.Equal(got, []string{s.want}) {
			t.Errorf("step %d (%s): reported %q, want [%s]", i, s.login, got, s.want)
		}
	}

	// A stale form is no attempt.
	if resp := f.browser(t).do("POST", "/.gatehouse/login", map[string][]string{"username": {"alice"}, "password": {"x"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("form without CSRF token: %d", resp.StatusCode)
	}
	if got := m.take(); len(got) != 0 {
		t.Errorf("a form refused for its CSRF token was reported: %q", got)
	}
}

// TestSignInMetricsBusyAndHashingGauge: a sign-in that finds every hashing
// slot taken is reported busy, and Hashing shows the slots in use.
func TestSignInMetricsBusyAndHashingGauge(t *testing.T) {
	m := &fakeMetrics{}
	f := withMetrics(t, newFixture(t), Config{Limits: Limits{HashConcurrency: 2, HashQueue: 1, HashWait: 10 * time.Millisecond}}, m)
	if inUse, waiting := f.ui.Hashing(); inUse != 0 || waiting != 0 {
		t.Errorf("idle: Hashing() = %d, %d; want 0, 0", inUse, waiting)
	}
	f.ui.guard.slots <- struct{}{}
	f.ui.guard.slots <- struct{}{}
	if inUse, _ := f.ui.Hashing(); inUse != 2 {
		t.Errorf("all slots taken: in use %d, want 2", inUse)
	}
	if resp := f.browser(t).attempt("alice", "alice-password"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
	if got := m.take(); !slices.Equal(got, []string{SignInBusy}) {
		t.Errorf("reported %q, want [busy]", got)
	}
	f.ui.guard.release()
	f.ui.guard.release()
}
