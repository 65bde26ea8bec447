package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestRotatingForwardedForBuysNothing: a client outside trusted_proxies
// cannot reset the per-address limit by inventing X-Forwarded-For values.
func TestRotatingForwardedForBuysNothing(t *testing.T) {
	dir := t.TempDir()
	cfg := writeE2EConfig(t, dir, "login:\n  rate_limit: { per_ip: 4-M, per_user: 100-M }\napps:\n  - host: localhost\n    upstream: echo\n"+e2eRules)
	g := startGateway(t, cfg)
	c := g.client()
	last := 0
	for i := 0; i < 6; i++ {
		_, page := do(t, c, "GET", g.https+"/.gatehouse/login", nil)
		m := csrfField.FindStringSubmatch(page)
		if m == nil {
			t.Fatal("no token")
		}
		form := url.Values{"username": {"admin"}, "password": {"guess-" + string(rune('a'+i))}, "csrf": {m[1]}}
		resp, _ := do(t, c, "POST", g.https+"/.gatehouse/login", strings.NewReader(form.Encode()),
			"Content-Type", "application/x-www-form-urlencoded", "X-Forwarded-For", "198.51.100."+string(rune('1'+i)),
			"Forwarded", "for=203.0.113."+string(rune('1'+i)), "Accept", "application/json")
		last = resp.StatusCode
		if i < 4 && last != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i+1, last)
		}
	}
	if last != http.StatusTooManyRequests {
		t.Errorf("6th attempt with a new X-Forwarded-For: %d, want 429", last)
	}
}
