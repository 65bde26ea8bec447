package loginui

import (
	"bufio"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/store"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	ui    *UI
	db    *store.DB
	clock *clock
	logs  *strings.Builder
	mu    *sync.Mutex
}

const secret = "0123456789abcdef0123456789abcdef-test-secret"

func newFixture(t *testing.T, mutate ...func(*Config)) *fixture {
	t.Helper()
	c := &clock{t: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)}
	db, err := store.Open(filepath.Join(t.TempDir(), "g.db"), store.Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, u := range []store.User{
		{Username: "alice", Email: "alice@example.com", Roles: []string{"admin"}},
		{Username: "bob", Email: "bob@example.com"},
		{Username: "dora", Disabled: true},
	} {
		u.PasswordHash, _ = store.HashPassword(u.Username + "-password")
		if err := db.CreateUser(u); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{Secrets: [][]byte{[]byte(secret)}, HSTS: true}
	for _, m := range mutate {
		m(&cfg)
	}
	var mu sync.Mutex
	logs := &strings.Builder{}
	ui, err := New(cfg, Deps{
		DB: db, Now: c.now,
		Log:       slog.New(slog.NewJSONHandler(lockedWriter{&mu, logs}, nil)),
		ClientIP:  func(r *http.Request) netip.Addr { return netip.MustParseAddr("192.0.2.10") },
		IsAppHost: func(h string) bool { return h == "app.example.com" || h == "www.whitelisteddomain.tld" },
	})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{ui: ui, db: db, clock: c, logs: logs, mu: &mu}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// browser is a cookie-keeping client talking to the UI handler in-process.
type browser struct {
	t       *testing.T
	f       *fixture
	cookies map[string]string
}

func (f *fixture) browser(t *testing.T) *browser {
	return &browser{t: t, f: f, cookies: map[string]string{}}
}

func (b *browser) do(method, target string, form url.Values, headers ...string) *http.Response {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, "https://app.example.com"+target, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for name, value := range b.cookies {
		r.AddCookie(&http.Cookie{Name: name, Value: value})
	}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	b.f.ui.Handler().ServeHTTP(w, r)
	resp := w.Result()
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c.Value
		}
	}
	return resp
}

func body(r *http.Response) string {
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

var tokenRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) token(path string) string {
	b.t.Helper()
	m := tokenRE.FindStringSubmatch(body(b.do("GET", path, nil)))
	if m == nil {
		b.t.Fatalf("no CSRF token on %s", path)
	}
	return m[1]
}

func (b *browser) signIn(login, password, rd string, extra ...string) *http.Response {
	b.t.Helper()
	form := url.Values{"username": {login}, "password": {password}, "rd": {rd}, "csrf": {b.token("/.gatehouse/login")}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	return b.do("POST", "/.gatehouse/login", form)
}

// user is who the UI thinks the browser is.
func (b *browser) user() string {
	b.t.Helper()
	r := httptest.NewRequest("GET", "https://app.example.com/", nil)
	for name, value := range b.cookies {
		r.AddCookie(&http.Cookie{Name: name, Value: value})
	}
	u, err := b.f.ui.Authenticate(r)
	if err != nil {
		b.t.Fatal(err)
	}
	if u == nil {
		return ""
	}
	return u.Username
}

func TestSignInSetsAHardenedCookie(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	resp := b.signIn("alice", "alice-password", "/docs?x=1")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/docs?x=1" {
		t.Fatalf("sign-in: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var c *http.Cookie
	for _, x := range resp.Cookies() {
		if x.Name == "__Host-gatehouse" {
			c = x
		}
	}
	if c == nil {
		t.Fatalf("no __Host-gatehouse cookie in %v", resp.Header["Set-Cookie"])
	}
	if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" || c.MaxAge != 0 {
		t.Errorf("cookie attributes: %+v", c)
	}
	if strings.Contains(c.Value, "alice") || len(c.Value) > 300 {
		t.Errorf("cookie value reveals or carries too much: %q", c.Value)
	}
	if b.user() != "alice" {
		t.Errorf("signed in as %q", b.user())
	}
	if u, _ := f.db.User("alice"); !u.LastSignIn.Equal(f.clock.now()) {
		t.Errorf("LastSignIn = %v", u.LastSignIn)
	}
}

func TestFailedSignInsAllLookTheSame(t *testing.T) {
	f := newFixture(t)
	var first string
	for _, tc := range []struct{ name, login, password string }{
		{"unknown user", "mallory", "whatever-password"},
		{"wrong password", "alice", "wrong-password"},
		{"disabled user, right password", "dora", "dora-password"},
		{"email, wrong password", "alice@example.com", "nope-nope"},
		{"empty", "", ""},
		{"huge password", "alice", strings.Repeat("x", 5000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := f.browser(t)
			resp := b.signIn(tc.login, tc.password, "/")
			page := body(resp)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if !strings.Contains(page, `role="alert" id="form-error">Incorrect username or password.</div>`) {
				t.Errorf("no generic message:\n%s", page)
			}
			// The page differs only in the echoed username and fresh token.
			norm := tokenRE.ReplaceAllString(page, "")
			norm = strings.Replace(norm, `value="`+htmlEscape(truncate(tc.login, maxLogin))+`"`, `value=""`, 1)
			if first == "" {
				first = norm
			} else if norm != first {
				t.Errorf("the page differs from the first failure's")
			}
			if b.user() != "" {
				t.Error("signed in after a failure")
			}
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.Contains(f.logs.String(), "wrong-password") || strings.Contains(f.logs.String(), "dora-password") {
		t.Error("a password reached the log")
	}
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "'", "&#39;", "<", "&lt;", ">", "&gt;", `"`, "&#34;").Replace(s)
}

func TestSignInByEmailAndAnyCase(t *testing.T) {
	f := newFixture(t)
	for _, login := range []string{"ALICE", " Alice ", "Alice@Example.com"} {
		b := f.browser(t)
		if resp := b.signIn(login, "alice-password", "/"); resp.StatusCode != http.StatusSeeOther || b.user() != "alice" {
			t.Errorf("sign-in as %q: %d, user %q", login, resp.StatusCode, b.user())
		}
	}
}

func TestPlantedSessionIsReplacedAtSignIn(t *testing.T) {
	f := newFixture(t)
	// The attacker signs in, then plants their cookie in the victim's browser.
	attacker := f.browser(t)
	attacker.signIn("bob", "bob-password", "/")
	planted := attacker.cookies["__Host-gatehouse"]
	victim := f.browser(t)
	victim.cookies["__Host-gatehouse"] = planted
	victim.signIn("alice", "alice-password", "/")
	if victim.cookies["__Host-gatehouse"] == planted {
		t.Fatal("the session id was not replaced at sign-in")
	}
	if victim.user() != "alice" {
		t.Errorf("victim is %q", victim.user())
	}
	if attacker.user() != "" {
		t.Error("the planted session still works: the attacker shares it")
	}
}

func TestSignOutEndsTheSessionEverywhere(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.signIn("alice", "alice-password", "/")
	copied := b.cookies["__Host-gatehouse"]

	resp := b.do("GET", "/.gatehouse/logout", nil)
	if resp.StatusCode != 200 || b.user() != "alice" {
		t.Fatalf("GET logout must only show a form: %d, user %q", resp.StatusCode, b.user())
	}
	resp = b.do("POST", "/.gatehouse/logout", url.Values{"csrf": {b.token("/.gatehouse/logout")}})
	if resp.StatusCode != 200 || !strings.Contains(body(resp), "You are signed out") {
		t.Fatalf("sign-out: %d", resp.StatusCode)
	}
	thief := f.browser(t)
	thief.cookies["__Host-gatehouse"] = copied
	if thief.user() != "" {
		t.Error("a copied cookie still works after sign-out")
	}
}

func TestForgedFormsAreRefused(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.signIn("alice", "alice-password", "/")
	token := b.token("/.gatehouse/logout")
	tests := []struct {
		name    string
		form    url.Values
		headers []string
	}{
		{"cross-site origin", url.Values{"csrf": {token}}, []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}},
		{"cross-site fetch metadata", url.Values{"csrf": {token}}, []string{"Sec-Fetch-Site", "cross-site"}},
		{"no token", url.Values{}, nil},
		{"forged token", url.Values{"csrf": {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := b.do("POST", "/.gatehouse/logout", tc.form, tc.headers...)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("status %d, want 403", resp.StatusCode)
			}
			if b.user() != "alice" {
				t.Error("a forged sign-out ended the session")
			}
		})
	}
	other := f.browser(t) // a token from another browser's cookie
	resp := other.do("POST", "/.gatehouse/login", url.Values{"username": {"alice"}, "password": {"alice-password"}, "csrf": {token}})
	if resp.StatusCode != http.StatusForbidden || other.user() != "" {
		t.Errorf("sign-in with another browser's token: %d", resp.StatusCode)
	}
}

func TestExpiryIdleAbsoluteAndRememberMe(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.signIn("alice", "alice-password", "/")
	f.clock.add(59 * time.Minute)
	if b.user() != "alice" {
		t.Fatal("expired before the idle timeout")
	}
	f.clock.add(61 * time.Minute)
	if b.user() != "" {
		t.Error("alive after an hour idle")
	}

	b = f.browser(t)
	b.signIn("alice", "alice-password", "/")
	for i := 0; i < 24; i++ { // active every 30 minutes for 12 hours
		f.clock.add(30 * time.Minute)
		if got := b.user(); (i < 23) != (got == "alice") {
			t.Fatalf("after %d half-hours: user %q", i+1, got)
		}
	}

	b = f.browser(t)
	resp := b.signIn("alice", "alice-password", "/", "remember", "on")
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-gatehouse" && c.MaxAge != int((720*time.Hour).Seconds()) {
			t.Errorf("remember-me cookie Max-Age %d", c.MaxAge)
		}
	}
	f.clock.add(10 * 24 * time.Hour)
	if b.user() != "alice" {
		t.Error("remembered session ended after 10 days")
	}
	f.clock.add(21 * 24 * time.Hour)
	if b.user() != "" {
		t.Error("remembered session outlived remember_me")
	}
}

func TestAccountChangesTakeEffectOnTheNextRequest(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.signIn("bob", "bob-password", "/")
	if _, err := f.db.UpdateUser("bob", func(u *store.User) error { u.Roles = []string{"auditor"}; return nil }); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: "__Host-gatehouse", Value: b.cookies["__Host-gatehouse"]})
	if u, _ := f.ui.Authenticate(r); u == nil || len(u.Roles) != 1 || u.Roles[0] != "auditor" {
		t.Errorf("role change not visible: %+v", u)
	}
	_, _ = f.db.UpdateUser("bob", func(u *store.User) error { u.Disabled = true; return nil })
	if b.user() != "" {
		t.Error("a disabled user's live session still works")
	}
}

func TestLegacyHashIsUpgradedAtSignIn(t *testing.T) {
	f := newFixture(t)
	// Werkzeug pbkdf2 of "correct horse" (see store's vectors).
	legacy := "pbkdf2:sha256:1000$aB3dE5gH7jK9mN1p$383009624ae1e6493ff8f3c047469c9f7a4cceaed67155508d8b4b0f38087bb4"
	if err := f.db.CreateUser(store.User{Username: "flask", PasswordHash: legacy}); err != nil {
		t.Fatal(err)
	}
	b := f.browser(t)
	if resp := b.signIn("flask", "correct horse", "/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("legacy sign-in: %d", resp.StatusCode)
	}
	u, _ := f.db.User("flask")
	if !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
		t.Errorf("hash not upgraded: %q", u.PasswordHash)
	}
	if resp := f.browser(t).signIn("flask", "correct horse", "/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-in with the upgraded hash: %d", resp.StatusCode)
	}
}

func TestOldSecretsStillDecode(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.signIn("alice", "alice-password", "/")
	rotated, err := New(Config{Secrets: [][]byte{[]byte("a-brand-new-secret-of-32-bytes-or-more!"), []byte(secret)}},
		Deps{DB: f.db, Log: slog.New(slog.DiscardHandler), Now: f.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: "__Host-gatehouse", Value: b.cookies["__Host-gatehouse"]})
	if u, _ := rotated.Authenticate(r); u == nil || u.Username != "alice" {
		t.Error("a cookie made with the previous secret no longer works")
	}
	stranger, _ := New(Config{Secrets: [][]byte{[]byte("an-unrelated-secret-of-32-bytes-or-more")}},
		Deps{DB: f.db, Log: slog.New(slog.DiscardHandler), Now: f.clock.now})
	if u, _ := stranger.Authenticate(r); u != nil {
		t.Error("a cookie decoded with an unrelated secret")
	}
}

func TestSecurityHeadersOnEveryPage(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	for _, target := range []string{"/.gatehouse/login", "/.gatehouse/logout", "/.gatehouse/nope"} {
		resp := b.do("GET", target, nil)
		h := resp.Header
		for name, want := range map[string]string{
			"Content-Security-Policy":   "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
			"X-Content-Type-Options":    "nosniff",
			"Referrer-Policy":           "same-origin",
			"X-Frame-Options":           "DENY",
			"Cache-Control":             "no-store",
			"Strict-Transport-Security": "max-age=31536000",
		} {
			if h.Get(name) != want {
				t.Errorf("%s: %s = %q, want %q", target, name, h.Get(name), want)
			}
		}
		page := body(resp)
		if strings.Contains(page, "<script") || strings.Contains(page, "style=") || strings.Contains(page, "http://") {
			t.Errorf("%s has inline script/style or an external asset", target)
		}
	}
	if resp := b.do("GET", "/.gatehouse/nope", nil); resp.StatusCode != 404 {
		t.Errorf("unknown page: %d", resp.StatusCode)
	}
	if resp := b.do("DELETE", "/.gatehouse/login", nil); resp.StatusCode != 405 || resp.Header.Get("Allow") == "" {
		t.Errorf("DELETE login: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	big := url.Values{"username": {strings.Repeat("a", 20000)}}
	if resp := b.do("POST", "/.gatehouse/login", big); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("huge form: %d", resp.StatusCode)
	}
	css := b.do("GET", "/.gatehouse/static/style.css", nil)
	if css.StatusCode != 200 || !strings.Contains(body(css), "--accent: #1d4ed8;") {
		t.Errorf("stylesheet: %d", css.StatusCode)
	}
}

func TestPagesAreAccessible(t *testing.T) {
	f := newFixture(t)
	page := body(f.browser(t).do("GET", "/.gatehouse/login", nil))
	for _, want := range []string{`<html lang="en">`, `<label for="username">`, `<label for="password">`, `autocomplete="username"`,
		`autocomplete="current-password"`, `autofocus`, `<label for="remember">`} {
		if !strings.Contains(page, want) {
			t.Errorf("sign-in page lacks %s", want)
		}
	}
	// Every input but hidden ones has a label.
	for _, m := range regexp.MustCompile(`<input id="([^"]+)"`).FindAllStringSubmatch(page, -1) {
		if !strings.Contains(page, `<label for="`+m[1]+`"`) {
			t.Errorf("input %s has no label", m[1])
		}
	}
	if onAccent("#1d4ed8") != "#ffffff" || onAccent("#ffd400") != "#000000" {
		t.Error("button text colour does not follow contrast")
	}
}

func TestErrorAndForbiddenPagesShowNoInternals(t *testing.T) {
	f := newFixture(t)
	for _, status := range []int{400, 404, 421, 429, 500, 502, 503, 504} {
		w := httptest.NewRecorder()
		f.ui.Error(w, httptest.NewRequest("GET", "/", nil), status)
		if w.Code != status || !strings.Contains(w.Body.String(), "<h1>") {
			t.Errorf("Error(%d): %d", status, w.Code)
		}
	}
	w := httptest.NewRecorder()
	u, _ := f.db.User("bob")
	f.ui.Forbidden(w, httptest.NewRequest("GET", "/admin", nil), &u, "config.yaml:12")
	page := w.Body.String()
	if w.Code != 403 || !strings.Contains(page, "<strong>bob</strong>") || !strings.Contains(page, "Decided by rule config.yaml:12") ||
		!strings.Contains(page, `action="/.gatehouse/logout"`) || !tokenRE.MatchString(page) {
		t.Errorf("forbidden page: %d\n%s", w.Code, page)
	}
}

// TestOpenRedirectCorpus runs oauth2-proxy's public corpus of open-redirect
// payloads: every one must land on "/".
func TestOpenRedirectCorpus(t *testing.T) {
	f, err := os.Open("testdata/openredirects.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	isApp := func(h string) bool { return h == "www.whitelisteddomain.tld" }
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		rd, err := url.QueryUnescape(line)
		if err != nil {
			rd = line
		}
		n++
		if got := SafeRedirect(rd, isApp); got != "/" {
			t.Errorf("SafeRedirect(%q) = %q, want /", rd, got)
		}
	}
	if n < 500 {
		t.Fatalf("only %d payloads read", n)
	}
	// Beyond the corpus: targets that are harmless to a browser but not to
	// an app that decodes them once more, or that do not parse at all.
	for _, bad := range []string{"/%2F%2Fevil.example", "/%2f/evil.example", "/%5Cevil.example", "/a%0d%0aSet-Cookie:%20x=y", "/%0", "/%zz",
		"https://www.whitelisteddomain.tld@evil.example/", "https://evil.example\\@www.whitelisteddomain.tld/", "http://www.whitelisteddomain.tld/"} {
		if got := SafeRedirect(bad, isApp); got != "/" {
			t.Errorf("SafeRedirect(%q) = %q, want /", bad, got)
		}
	}
	for _, good := range []string{"/", "/a/b?c=d", "/My%20Documents/x?q=a%20b", "https://www.whitelisteddomain.tld/x", "https://WWW.whitelisteddomain.tld:8443/x?y#z"} {
		if got := SafeRedirect(good, isApp); got != good {
			t.Errorf("SafeRedirect(%q) = %q, want it kept", good, got)
		}
	}
}

func FuzzSafeRedirect(f *testing.F) {
	for _, s := range []string{"/", "//evil.com", "/\\evil.com", "https://www.whitelisteddomain.tld/x", "https://evil.com@www.whitelisteddomain.tld", "/%0a/evil"} {
		f.Add(s)
	}
	isApp := func(h string) bool { return h == "www.whitelisteddomain.tld" }
	f.Fuzz(func(t *testing.T, rd string) {
		got := SafeRedirect(rd, isApp)
		if got != "/" && got != rd {
			t.Fatalf("SafeRedirect(%q) = %q", rd, got)
		}
		if got == "/" {
			return
		}
		// What a browser would repair into another URL: backslashes,
		// whitespace and control bytes anywhere, a "//" start.
		if strings.ContainsFunc(got, func(r rune) bool { return r == '\\' || r <= ' ' || r == 0x7f }) || strings.HasPrefix(got, "//") {
			t.Fatalf("accepted %q", got)
		}
		if !strings.HasPrefix(got, "/") && !strings.HasPrefix(strings.ToLower(got), "https://") {
			t.Fatalf("accepted %q: neither a local path nor https", got)
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("accepted unparsable %q", got)
		}
		if u.Host != "" && u.Hostname() != "www.whitelisteddomain.tld" && !strings.EqualFold(u.Hostname(), "www.whitelisteddomain.tld") {
			t.Fatalf("accepted %q leading to %q", got, u.Host)
		}
		// A browser resolves it against the current page: it must stay on an app host.
		base, _ := url.Parse("https://app.example.com/here")
		if dest := base.ResolveReference(u); dest.Host != "app.example.com" && !strings.EqualFold(dest.Hostname(), "www.whitelisteddomain.tld") {
			t.Fatalf("%q resolves to %q", got, dest)
		}
	})
}

func BenchmarkAuthenticate(b *testing.B) {
	db, err := store.Open(filepath.Join(b.TempDir(), "g.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	_ = db.CreateUser(store.User{Username: "alice", Roles: []string{"admin"}})
	ui, err := New(Config{Secrets: [][]byte{[]byte(secret)}}, Deps{DB: db, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	id := store.NewSessionID()
	_ = db.CreateSession(store.Session{ID: id, Username: "alice", Created: time.Now(), Expires: time.Now().Add(time.Hour), Idle: time.Hour})
	value, _ := encodeForTest(ui, id)
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: ui.CookieName(), Value: value})
	r.Header.Add("Cookie", "theme=dark; lang=en")
	b.ReportAllocs()
	for b.Loop() {
		if u, _ := ui.Authenticate(r); u == nil {
			b.Fatal("not signed in")
		}
	}
}
