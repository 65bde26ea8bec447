package loginui

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ulule/limiter/v3"

	"github.com/gatehouse-auth/gatehouse/store"
)

// post sends a sign-in form without the per-browser CSRF cookie dance:
// it asks for a token and posts it, as a browser would.
func (b *browser) attempt(login, password string, headers ...string) *http.Response {
	b.t.Helper()
	form := url.Values{"username": {login}, "password": {password}, "csrf": {b.token("/.gatehouse/login")}}
	return b.do("POST", "/.gatehouse/login", form, headers...)
}

func TestIPv6ClientsAreLimitedPer64(t *testing.T) {
	a, b := netip.MustParseAddr("2001:db8:1:2:aaaa::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9")
	if ipKey(a) != ipKey(b) || ipKey(a) != "2001:db8:1:2::/64" {
		t.Errorf("ipKey(%v) = %q, ipKey(%v) = %q", a, ipKey(a), b, ipKey(b))
	}
	if ipKey(netip.MustParseAddr("::ffff:192.0.2.1")) != "192.0.2.1" {
		t.Error("v4-mapped address not unmapped")
	}
}

func TestPerAddressLimit(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Limits.PerIP = limiter.Rate{Period: time.Minute, Limit: 3} })
	b := f.browser(t)
	for i := 0; i < 3; i++ {
		if resp := b.attempt("mallory", "guess-"+strconv.Itoa(i)); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, resp.StatusCode)
		}
	}
	resp := b.attempt("alice", "alice-password")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("4th attempt: %d, want 429", resp.StatusCode)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Errorf("Retry-After = %q", resp.Header.Get("Retry-After"))
	}
	if page := body(resp); !strings.Contains(page, "Too many attempts. Please wait") {
		t.Errorf("429 page:\n%s", page)
	}
	if b.user() != "" {
		t.Error("signed in past the limit")
	}
	resp = b.attempt("alice", "alice-password", "Accept", "application/json")
	if resp.StatusCode != http.StatusTooManyRequests || strings.TrimSpace(body(resp)) != `{"error":"too many attempts"}` {
		t.Errorf("API client: %d", resp.StatusCode)
	}
}

func TestPerAccountLimitCountsEverySpellingAsOne(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Limits.PerUser = limiter.Rate{Period: time.Minute, Limit: 3}
		c.Limits.LockoutAttempts = -1
	})
	for _, login := range []string{"Alice", "alice", "alice@example.com"} {
		if resp := f.browser(t).attempt(login, "wrong-password"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: %d", login, resp.StatusCode)
		}
	}
	if resp := f.browser(t).attempt(" ALICE ", "alice-password"); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("4th attempt on the same account: %d, want 429", resp.StatusCode)
	}
	if resp := f.browser(t).attempt("bob", "bob-password"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("another account is limited too: %d", resp.StatusCode)
	}
	// Unknown names are limited the same way: 429 says nothing about existence.
	for i := 0; i < 3; i++ {
		f.browser(t).attempt("ghost", "x-password")
	}
	if resp := f.browser(t).attempt("Ghost", "x-password"); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("unknown account: %d, want 429 like a known one", resp.StatusCode)
	}
}

func TestLockoutIsPersistentAndLiftedByTimeOrAdmin(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < 5; i++ {
		f.clock.add(time.Second)
		f.browser(t).attempt("bob", "wrong-password")
	}
	u, _ := f.db.User("bob")
	if !u.LockedUntil.After(f.clock.now()) || u.FailedLogins != 5 {
		t.Fatalf("not locked after 5 failures: %+v", u)
	}
	wrong := f.browser(t).attempt("bob", "wrong-password")
	right := f.browser(t).attempt("bob", "bob-password")
	wb, rb := tokenRE.ReplaceAllString(body(wrong), ""), tokenRE.ReplaceAllString(body(right), "")
	if right.StatusCode != wrong.StatusCode || rb != wb {
		t.Errorf("locked account: right password answers %d, wrong %d; bodies equal: %v", right.StatusCode, wrong.StatusCode, rb == wb)
	}
	// A restart (a new UI on the same store) keeps the lock.
	again, err := New(Config{Secrets: [][]byte{[]byte(secret)}}, Deps{DB: f.db, Log: f.ui.log, Now: f.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	f2 := &fixture{ui: again, db: f.db, clock: f.clock, logs: f.logs, mu: f.mu}
	if resp := f2.browser(t).attempt("bob", "bob-password"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("lock lost across a restart: %d", resp.StatusCode)
	}
	f.clock.add(16 * time.Minute)
	if resp := f2.browser(t).attempt("bob", "bob-password"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("lock not lifted by time: %d", resp.StatusCode)
	}
	if u, _ := f.db.User("bob"); u.FailedLogins != 0 {
		t.Errorf("failures not reset by a sign-in: %d", u.FailedLogins)
	}
	// Failures spread wider than the window never lock.
	for i := 0; i < 6; i++ {
		f.clock.add(20 * time.Minute)
		f2.browser(t).attempt("alice", "wrong-password")
	}
	if u, _ := f.db.User("alice"); u.LockedUntil.After(f.clock.now()) {
		t.Error("locked by failures an hour apart")
	}
	f.mu.Lock()
	logs := f.logs.String()
	f.mu.Unlock()
	if !strings.Contains(logs, `"event":"lockout","user":"bob"`) {
		t.Errorf("no lockout audit event:\n%s", logs)
	}
	if strings.Contains(logs, "bob-password") || strings.Contains(logs, "wrong-password") {
		t.Error("a password reached the log")
	}
}

// TestNoEnumerationByWork: every kind of failed sign-in costs exactly one
// argon2id hash, so timing cannot tell an unknown account from a locked,
// disabled or real one. The work is measured as the memory the hash fills
// (argon2id's m parameter), which, unlike elapsed time, does not depend on
// how busy the machine is.
func TestNoEnumerationByWork(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Limits.PerIP = limiter.Rate{Period: time.Minute, Limit: 10000}
		c.Limits.PerUser = limiter.Rate{Period: time.Minute, Limit: 10000}
		c.Limits.LockoutAttempts = -1
	})
	locked, _ := store.HashPassword("carol-password")
	_ = f.db.CreateUser(store.User{Username: "carol", PasswordHash: locked, LockedUntil: f.clock.now().Add(time.Hour)})
	r := httptest.NewRequest("POST", "https://app.example.com/.gatehouse/login", nil)
	oneHash := uint64(store.DefaultArgon2.Memory) * 1024
	for _, tc := range []struct{ name, login, password string }{
		{"unknown user", "nobody-here", "some-password"},
		{"wrong password", "alice", "wrong-password"},
		{"locked, right password", "carol", "carol-password"},
		{"disabled, right password", "dora", "dora-password"},
		{"empty password", "alice", ""},
		{"password too long", "alice", strings.Repeat("x", maxPassword+1)},
		{"login too long", strings.Repeat("a", maxLogin+1), "alice-password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := f.ui.guardedCheck(r, tc.login, tc.password)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrSignInFailed) {
				t.Fatalf("err = %v, want ErrSignInFailed", err)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got < oneHash || got > oneHash+oneHash/5 {
				t.Errorf("allocated %d bytes, want one argon2id hash: %d to %d", got, oneHash, oneHash+oneHash/5)
			}
		})
	}
}

func TestHashingIsBounded(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Limits.PerIP = limiter.Rate{Period: time.Minute, Limit: 10000}
		c.Limits.PerUser = limiter.Rate{Period: time.Minute, Limit: 10000}
		c.Limits.HashConcurrency = 1
		c.Limits.HashQueue = 2
		c.Limits.HashWait = 30 * time.Millisecond
	})
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[int]int{}
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			b := f.browser(t)
			form := url.Values{"username": {"user" + strconv.Itoa(i)}, "password": {"x-password"}, "csrf": {b.token("/.gatehouse/login")}}
			resp := b.do("POST", "/.gatehouse/login", form, "Accept", "application/json")
			mu.Lock()
			counts[resp.StatusCode]++
			mu.Unlock()
			if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		}(i)
	}
	wg.Wait()
	if counts[http.StatusServiceUnavailable] == 0 || counts[http.StatusUnauthorized] == 0 || counts[503]+counts[401] != 16 {
		t.Errorf("answers %v: want some 401 and some quick 503", counts)
	}
}
