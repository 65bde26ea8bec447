package loginui

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/gatehouse-auth/gatehouse/store"
)

// TestExpiredFormIsOfferedAgain: a stale tab (no CSRF cookie, or one from
// before) gets the form back with a fresh token, and that token works.
func TestExpiredFormIsOfferedAgain(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	resp := b.do("POST", "/.gatehouse/login", url.Values{"username": {"alice"}, "password": {"alice-password"}, "rd": {"/wiki"}})
	page := body(resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status = %d, want 403", resp.StatusCode)
	}
	if !strings.Contains(page, `role="alert" id="form-error">This form has expired. Please try again.</div>`) {
		t.Errorf("no expiry message:\n%s", page)
	}
	if _, ok := b.cookies["__Host-gatehouse-csrf"]; !ok {
		t.Fatal("no fresh CSRF cookie issued")
	}
	m := tokenRE.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, `name="rd" value="/wiki"`) || !strings.Contains(page, `value="alice"`) {
		t.Fatalf("the form came back without its token, rd or username:\n%s", page)
	}
	resp = b.do("POST", "/.gatehouse/login", url.Values{"username": {"alice"}, "password": {"alice-password"}, "rd": {"/wiki"}, "csrf": {m[1]}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/wiki" || b.user() != "alice" {
		t.Errorf("second try: %d to %q, user %q", resp.StatusCode, resp.Header.Get("Location"), b.user())
	}

	resp = b.do("POST", "/.gatehouse/logout", url.Values{"csrf": {"stale"}})
	page = body(resp)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "This form has expired. Please try again.") || !tokenRE.MatchString(page) {
		t.Errorf("stale sign-out: %d\n%s", resp.StatusCode, page)
	}
	if b.user() != "alice" {
		t.Error("a stale sign-out form ended the session")
	}
}

func TestRoutes(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Brand.Logo, c.Brand.LogoType = []byte("<svg/>"), "image/svg+xml" })
	b := f.browser(t)
	tests := []struct {
		method, target string
		status         int
		allow          string
		contentType    string
	}{
		{"GET", "/.gatehouse/login", 200, "", "text/html; charset=utf-8"},
		{"HEAD", "/.gatehouse/login", 200, "", "text/html; charset=utf-8"},
		{"GET", "/.gatehouse/logout", 200, "", "text/html; charset=utf-8"},
		{"GET", "/.gatehouse/static/style.css", 200, "", "text/css; charset=utf-8"},
		{"GET", "/.gatehouse/static/logo", 200, "", "image/svg+xml"},
		{"DELETE", "/.gatehouse/login", 405, "GET, HEAD, POST", "text/html; charset=utf-8"},
		{"PUT", "/.gatehouse/logout", 405, "GET, HEAD, POST", "text/html; charset=utf-8"},
		{"POST", "/.gatehouse/static/style.css", 405, "GET, HEAD", "text/html; charset=utf-8"},
		{"GET", "/.gatehouse/nope", 404, "", "text/html; charset=utf-8"},
		{"POST", "/.gatehouse/nope", 404, "", "text/html; charset=utf-8"},
		{"GET", "/.gatehouse/login/extra", 404, "", "text/html; charset=utf-8"},
		{"GET", "/.gatehouse/static/other.js", 404, "", "text/html; charset=utf-8"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			resp := b.do(tc.method, tc.target, nil)
			if resp.StatusCode != tc.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
			if got := resp.Header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tc.contentType)
			}
		})
	}
	if logo := b.do("GET", "/.gatehouse/static/logo", nil); !strings.Contains(logo.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("an SVG logo is served without a sandbox: %q", logo.Header.Get("Content-Security-Policy"))
	}
	if resp := f.browser(t).do("GET", "/.gatehouse/static/logo", nil); resp.StatusCode != 200 {
		t.Errorf("logo: %d", resp.StatusCode)
	}
	if resp := newFixture(t).browser(t).do("GET", "/.gatehouse/static/logo", nil); resp.StatusCode != 404 {
		t.Errorf("logo without a configured one: %d, want 404", resp.StatusCode)
	}
}

// TestSecurityHeadersOnEveryAnswer covers the answers to form posts too:
// failures, the redirect after sign-in and the signed-out page.
func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	answers := map[string]*http.Response{
		"failed sign-in":  b.signIn("alice", "wrong-password", "/"),
		"sign-in":         b.signIn("alice", "alice-password", "/"),
		"expired form":    b.do("POST", "/.gatehouse/login", url.Values{"username": {"alice"}}),
		"cross-site post": b.do("POST", "/.gatehouse/logout", url.Values{}, "Sec-Fetch-Site", "cross-site"),
		"sign-out":        b.do("POST", "/.gatehouse/logout", url.Values{"csrf": {b.token("/.gatehouse/logout")}}),
		"405":             b.do("PUT", "/.gatehouse/login", nil),
		"413":             b.do("POST", "/.gatehouse/login", url.Values{"x": {strings.Repeat("x", 17<<10)}}),
	}
	for name, resp := range answers {
		for header, want := range map[string]string{
			"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "same-origin",
			"X-Frame-Options":         "DENY",
			"Cache-Control":           "no-store",
		} {
			if got := resp.Header.Get(header); got != want {
				t.Errorf("%s: %s = %q, want %q", name, header, got, want)
			}
		}
	}
	if got := answers["sign-in"].StatusCode; got != http.StatusSeeOther {
		t.Errorf("sign-in: %d", got)
	}
}

// TestEveryPageRenders renders each template with the data it can get,
// signed in and not: a template error would be a 500 and a log line.
func TestEveryPageRenders(t *testing.T) {
	brand := func(c *Config) {
		c.Brand = Brand{Title: `Acme <"Ops">`, Color: "#ffd400", Logo: []byte("\x89PNG"), LogoType: "image/png"}
	}
	f := newFixture(t, brand)
	alice, _ := f.db.User("alice")
	signedIn := f.browser(t)
	signedIn.signIn("alice", "alice-password", "/")
	anon := f.browser(t)
	get := func(b *browser, target string, headers ...string) func() *http.Response {
		return func() *http.Response { return b.do("GET", target, nil, headers...) }
	}
	direct := func(fn func(w http.ResponseWriter, r *http.Request)) func() *http.Response {
		return func() *http.Response {
			w := httptest.NewRecorder()
			r := httptest.NewRequest("GET", "https://app.example.com/admin/x?y=1", nil)
			r.Header.Set("Referer", "https://app.example.com/home?tab=2")
			fn(w, r)
			return w.Result()
		}
	}
	tests := []struct {
		name   string
		do     func() *http.Response
		status int
		want   string
		absent string
	}{
		{"login", get(anon, "/.gatehouse/login?rd=/x%22%3E%3Cscript%3E"), 200, `name="rd" value="/x&#34;&gt;&lt;script&gt;"`, "<script>"},
		{"login, remember-me off", get(newFixture(t, brand, func(c *Config) { c.RememberMe = -1 }).browser(t), "/.gatehouse/login"), 200, "Sign in", `name="remember"`},
		{"login, failed", func() *http.Response { return anon.signIn(`<b>"x"`, "nope", "/") }, 401, `value="&lt;b&gt;&#34;x&#34;"`, `<b>"x"`},
		{"logout, signed in", get(signedIn, "/.gatehouse/logout"), 200, "<strong>alice</strong>", ""},
		{"logout, anonymous", get(anon, "/.gatehouse/logout"), 200, "You are not signed in.", "<strong>"},
		{"signed out", func() *http.Response {
			return signedIn.do("POST", "/.gatehouse/logout", url.Values{"csrf": {signedIn.token("/.gatehouse/logout")}})
		}, 200, `href="/.gatehouse/login">Sign in again</a>`, ""},
		{"not found", get(anon, "/.gatehouse/nope"), 404, "Page not found", ""},
		{"forbidden, signed in", direct(func(w http.ResponseWriter, r *http.Request) { f.ui.Forbidden(w, r, &alice, "apps.yaml:7") }), 403,
			`<a class="button secondary" href="/home?tab=2">Go back</a>`, ""},
		{"forbidden, anonymous, no rule", direct(func(w http.ResponseWriter, r *http.Request) { f.ui.Forbidden(w, r, nil, "") }), 403,
			"This page is not available to you.", "Decided by rule"},
		{"unusual status", direct(func(w http.ResponseWriter, r *http.Request) { f.ui.Error(w, r, http.StatusTeapot) }), 418, "teapot", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := tc.do()
			page := body(resp)
			if resp.StatusCode != tc.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if !strings.Contains(page, tc.want) {
				t.Errorf("page lacks %s:\n%s", tc.want, page)
			}
			if tc.absent != "" && strings.Contains(page, tc.absent) {
				t.Errorf("page has %s:\n%s", tc.absent, page)
			}
			if !strings.Contains(page, "Acme &lt;&#34;Ops&#34;&gt;") || !strings.Contains(page, `src="/.gatehouse/static/logo"`) {
				t.Errorf("page lacks the escaped brand and logo:\n%s", page)
			}
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.Contains(f.logs.String(), "rendering page") {
		t.Errorf("a template failed:\n%s", f.logs.String())
	}
}

func TestForbiddenBackLinkStaysOnThisHost(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ name, referer, want string }{
		{"same host", "https://app.example.com/wiki/Home?x=1", `href="/wiki/Home?x=1">Go back`},
		{"no referer", "", `href="/">Go to the home page`},
		{"other host", "https://evil.example/phish", `href="/">Go to the home page`},
		{"scheme-relative trick", "https://app.example.com//evil.example/", `href="/">Go to the home page`},
		{"javascript", "javascript:alert(1)//app.example.com", `href="/">Go to the home page`},
		{"the page itself", "https://app.example.com/admin", `href="/">Go to the home page`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			r := httptest.NewRequest("GET", "https://app.example.com/admin", nil)
			if tc.referer != "" {
				r.Header.Set("Referer", tc.referer)
			}
			f.ui.Forbidden(w, r, nil, "")
			if !strings.Contains(w.Body.String(), tc.want) {
				t.Errorf("page lacks %s:\n%s", tc.want, w.Body.String())
			}
		})
	}
}

func TestDomainCookieForSingleSignOn(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Domain = "Example.COM"; c.CookieName = "gh" })
	if got := f.ui.CookieName(); got != "gh" {
		t.Errorf("CookieName() = %q, want gh (no __Host- prefix with a domain)", got)
	}
	b := f.browser(t)
	resp := b.signIn("alice", "alice-password", "/", "remember", "on")
	var raw string
	for _, line := range resp.Header["Set-Cookie"] {
		if strings.HasPrefix(line, "gh=") {
			raw = line
		}
	}
	// Max-Age and Expires: the remember-me cookie outlives the browser.
	for _, want := range []string{"; Path=/", "; Domain=example.com", "; Max-Age=2592000", "; HttpOnly", "; Secure", "; SameSite=Lax"} {
		if !strings.Contains(raw, want) {
			t.Errorf("Set-Cookie %q lacks %q", raw, want)
		}
	}
	if b.user() != "alice" {
		t.Errorf("signed in as %q", b.user())
	}
}

func TestSessionRecordsWhoSignedIn(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	long := strings.Repeat("Mozilla/5.0 ", 40)
	form := url.Values{"username": {"alice"}, "password": {"alice-password"}, "csrf": {b.token("/.gatehouse/login")}}
	b.do("POST", "/.gatehouse/login", form, "User-Agent", long)
	list, err := f.db.UserSessions("alice")
	if err != nil || len(list) != 1 {
		t.Fatalf("UserSessions = %d sessions, %v", len(list), err)
	}
	if got := list[0]; got.RemoteAddr != "192.0.2.10" || got.UserAgent != long[:256] || got.Remember {
		t.Errorf("session = %+v, want address 192.0.2.10 and the user agent cut to 256 bytes", got)
	}
}

// TestAuditLog: sign-in, failure and sign-out each leave one audit line
// that names the user and address, never a password or a cookie.
func TestAuditLog(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.signIn("Alice@Example.com", "not-her-password", "/")
	b.signIn("ALICE", "alice-password", "/")
	cookie := b.cookies["__Host-gatehouse"]
	b.do("POST", "/.gatehouse/logout", url.Values{"csrf": {b.token("/.gatehouse/logout")}})

	f.mu.Lock()
	logs := f.logs.String()
	f.mu.Unlock()
	var got []string
	for line := range strings.Lines(logs) {
		var e struct{ Msg, Event, User, IP string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if e.Msg == "audit" {
			got = append(got, e.Event+" "+e.User+" "+e.IP)
		}
	}
	want := []string{"signin_failed Alice@Example.com 192.0.2.10", "signin alice 192.0.2.10", "signout alice 192.0.2.10"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, secret := range []string{"not-her-password", "alice-password", cookie, b.cookies["__Host-gatehouse-csrf"]} {
		if secret != "" && strings.Contains(logs, secret) {
			t.Errorf("the log holds a secret: %q", secret)
		}
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	db, err := store.Open(t.TempDir()+"/g.db", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	good := [][]byte{[]byte(secret)}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no secret", Config{}, "a session secret of at least 32 bytes is required"},
		{"short secret", Config{Secrets: [][]byte{[]byte("short")}}, "a session secret of at least 32 bytes is required"},
		{"short old secret", Config{Secrets: append(good, []byte("old"))}, "every previous session secret must be at least 32 bytes"},
		{"bad colour", Config{Secrets: good, Brand: Brand{Color: "red; background:url(x)"}}, `brand colour "red; background:url(x)" is not #rrggbb`},
		{"negative lifetime", Config{Secrets: good, Lifetime: -1}, "the session idle timeout and lifetime must be positive"},
		{"domain with a port", Config{Secrets: good, Domain: "example.com:443"}, `session domain "example.com:443" is not a domain name like example.com`},
		{"logo that is not an image", Config{Secrets: good, Brand: Brand{Logo: []byte("<html>"), LogoType: "text/html"}}, `the logo's media type "text/html" is not an image type`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, Deps{DB: db, Log: slog.New(slog.DiscardHandler)})
			if err == nil || err.Error() != tc.want {
				t.Errorf("New: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestBackLinkRefusesTheOpenRedirectCorpus runs the open-redirect corpus
// through the only link the gateway derives from Referer (the 403 page's
// "Go back", which the admin console shows non-admins too): as a whole
// Referer, and as a path on this very host. Whatever comes back must be a
// local path that SafeRedirect keeps.
func TestBackLinkRefusesTheOpenRedirectCorpus(t *testing.T) {
	data, err := os.ReadFile("testdata/openredirects.txt")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		payload, err := url.QueryUnescape(line)
		if err != nil {
			payload = line
		}
		for _, referer := range []string{payload, "https://app.example.com" + payload, "https://app.example.com/" + payload} {
			n++
			r := httptest.NewRequest("GET", "https://app.example.com/admin", nil)
			r.Header.Set("Referer", referer)
			back := backLink(r)
			if back != "" && (SafeRedirect(back, nil) != back || !strings.HasPrefix(back, "/") || strings.HasPrefix(back, "//")) {
				t.Errorf("Referer %q gives the back link %q", referer, back)
			}
		}
	}
	if n < 1500 {
		t.Fatalf("only %d referers tried", n)
	}
}
