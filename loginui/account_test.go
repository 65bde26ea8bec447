package loginui

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ulule/limiter/v3"

	"github.com/gatehouse-auth/gatehouse/store"
)

const (
	strongPassword  = "correct horse battery staple"
	firefoxOnLinux  = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	safariOnIPhone  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
	chromeOnWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)

// signedIn returns a browser signed in as login, sending userAgent.
func (f *fixture) signedIn(t *testing.T, login, password, userAgent string) *browser {
	t.Helper()
	b := f.browser(t)
	form := url.Values{"username": {login}, "password": {password}, "csrf": {b.token("/.gatehouse/login")}}
	resp := b.do("POST", "/.gatehouse/login", form, "User-Agent", userAgent)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in as %s: %d", login, resp.StatusCode)
	}
	return b
}

func (f *fixture) logText() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logs.String()
}

func (b *browser) changePassword(current, pw, confirm string, headers ...string) *http.Response {
	b.t.Helper()
	form := url.Values{"current": {current}, "new": {pw}, "confirm": {confirm}, "csrf": {b.token(accountPath)}}
	return b.do("POST", accountPath+"/password", form, headers...)
}

var (
	sessionRowRE = regexp.MustCompile(`(?s)<li class="session">(.*?)</li>`)
	handleRE     = regexp.MustCompile(`name="session" value="([0-9a-f]+)"`)
	alertRE      = regexp.MustCompile(`<div class="alert" role="alert"[^>]*>([^<]*)</div>`)
)

// sessionRows maps each session handle on the browser's account page to
// its row's HTML.
func (b *browser) sessionRows() map[string]string {
	b.t.Helper()
	resp := b.do("GET", accountPath, nil)
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("account page: %d", resp.StatusCode)
	}
	rows := map[string]string{}
	for _, m := range sessionRowRE.FindAllStringSubmatch(body(resp), -1) {
		h := handleRE.FindStringSubmatch(m[1])
		if h == nil {
			b.t.Fatalf("session row without a handle: %s", m[1])
		}
		rows[h[1]] = m[1]
	}
	return rows
}

// ownHandle is the handle of the browser's own session, marked "This device".
func (b *browser) ownHandle() string {
	b.t.Helper()
	own := ""
	for h, row := range b.sessionRows() {
		if strings.Contains(row, "This device") {
			if own != "" {
				b.t.Fatal("two rows are marked as this device")
			}
			own = h
		}
	}
	if own == "" {
		b.t.Fatal("no row is marked as this device")
	}
	return own
}

func (b *browser) endSession(handle string, headers ...string) *http.Response {
	b.t.Helper()
	form := url.Values{"session": {handle}, "csrf": {b.token(accountPath)}}
	return b.do("POST", accountPath+"/sessions/end", form, headers...)
}

func alertText(page string) string {
	if m := alertRE.FindStringSubmatch(page); m != nil {
		return m[1]
	}
	return ""
}

func TestAccountNeedsSignIn(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	resp := b.do("GET", accountPath, nil, "Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/.gatehouse/login?rd=%2F.gatehouse%2Faccount" {
		t.Errorf("browser: %d to %q, want 302 to the sign-in page", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp = b.do("GET", accountPath, nil, "Accept", "application/json")
	if got := body(resp); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(got, `"authentication required"`) ||
		resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("API client: %d %q, want 401 JSON", resp.StatusCode, got)
	}
	// A form posted without a session changes nothing.
	before, _ := f.db.User("alice")
	form := url.Values{"current": {"alice-password"}, "new": {strongPassword}, "confirm": {strongPassword}, "csrf": {b.token("/.gatehouse/login")}}
	resp = b.do("POST", accountPath+"/password", form, "Accept", "text/html")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/.gatehouse/login?rd=") {
		t.Errorf("anonymous form post: %d to %q, want 303 to sign-in", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp = b.do("POST", accountPath+"/sessions/end-others", url.Values{"csrf": {form.Get("csrf")}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous API post: %d, want 401", resp.StatusCode)
	}
	if after, _ := f.db.User("alice"); after.PasswordHash != before.PasswordHash {
		t.Error("an anonymous post changed the password")
	}
	// Signing in with rd back lands on the account page.
	resp = b.signIn("alice", "alice-password", "/.gatehouse/account")
	if resp.Header.Get("Location") != accountPath {
		t.Errorf("sign-in with rd: to %q, want %q", resp.Header.Get("Location"), accountPath)
	}
	if resp := b.do("GET", accountPath, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("signed in: %d", resp.StatusCode)
	}
}

func TestAccountPageShowsTheUserSafely(t *testing.T) {
	f := newFixture(t)
	const hostile = `<script>alert("x")</script><img src=x onerror=alert(1)>`
	if _, err := f.db.UpdateUser("alice", func(u *store.User) error { u.DisplayName = hostile; return nil }); err != nil {
		t.Fatal(err)
	}
	b := f.signedIn(t, "alice", "alice-password", firefoxOnLinux)
	resp := b.do("GET", accountPath, nil)
	page := body(resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("account page: %d", resp.StatusCode)
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "<img src=x") || !strings.Contains(page, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
		t.Errorf("hostile display name not escaped:\n%s", page)
	}
	for _, want := range []string{"<dd>alice</dd>", "<dd>alice@example.com</dd>", "<dd>admin</dd>", "Firefox on Linux", "192.0.2.10",
		"This device", `autocomplete="current-password"`, `autocomplete="new-password"`, `<label for="current">`, `<label for="new">`,
		`<label for="confirm">`, `action="/.gatehouse/account/password"`, `action="/.gatehouse/account/sessions/end"`, "At least 8 characters"} {
		if !strings.Contains(page, want) {
			t.Errorf("account page lacks %s", want)
		}
	}
	for _, m := range regexp.MustCompile(`<input id="([^"]+)"`).FindAllStringSubmatch(page, -1) {
		if !strings.Contains(page, `<label for="`+m[1]+`"`) {
			t.Errorf("input %s has no label", m[1])
		}
	}
	if strings.Contains(page, "style=") || strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("account page has inline style or an external asset")
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self'; frame-ancestors 'none'") ||
		resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers: CSP %q, Cache-Control %q", csp, resp.Header.Get("Cache-Control"))
	}
	// A user without email, name or roles.
	bob := f.signedIn(t, "bob", "bob-password", "")
	if page := body(bob.do("GET", accountPath, nil)); !strings.Contains(page, "<dt>Roles</dt><dd>None</dd>") || strings.Contains(page, "<dt>Name</dt>") {
		t.Errorf("bob's page:\n%s", page)
	}
}

// TestPasswordChangeEndsOtherSessions: SPEC §7, a password change ends the
// user's other sessions (a thief's copied cookie) but not this one.
func TestPasswordChangeEndsOtherSessions(t *testing.T) {
	f := newFixture(t)
	mine := f.signedIn(t, "alice", "alice-password", firefoxOnLinux)
	other := f.signedIn(t, "alice", "alice-password", chromeOnWindows)
	bob := f.signedIn(t, "bob", "bob-password", "")
	signedInAt := f.clock.now()
	f.clock.add(time.Minute)

	resp := mine.changePassword("alice-password", strongPassword, strongPassword)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != accountPath+"?done=password" {
		t.Fatalf("change: %d to %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body(resp))
	}
	if mine.user() != "alice" {
		t.Error("the session that changed the password was ended")
	}
	if other.user() != "" {
		t.Error("another session of the user survived the password change")
	}
	if bob.user() != "bob" {
		t.Error("another user's session was ended")
	}
	if page := body(mine.do("GET", accountPath+"?done=password", nil)); !strings.Contains(page, `<div class="notice" role="status">Your password has been changed.`) {
		t.Error("no success notice after the change")
	}
	u, _ := f.db.User("alice")
	if !strings.HasPrefix(u.PasswordHash, "$argon2id$") || !u.PasswordChanged.Equal(f.clock.now()) || !u.LastSignIn.Equal(signedInAt) {
		t.Errorf("stored: hash %.10s, PasswordChanged %v, LastSignIn %v (want %v)", u.PasswordHash, u.PasswordChanged, u.LastSignIn, signedInAt)
	}
	if resp := f.browser(t).signIn("alice", "alice-password", "/"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("old password: %d, want 401", resp.StatusCode)
	}
	if resp := f.browser(t).signIn("alice", strongPassword, "/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("new password: %d, want 303", resp.StatusCode)
	}
	logs := f.logText()
	if !strings.Contains(logs, `"event":"password_changed","user":"alice","ip":"192.0.2.10","sessions_ended":1`) {
		t.Errorf("no password_changed audit event:\n%s", logs)
	}
	if strings.Contains(logs, "horse") || strings.Contains(logs, "alice-password") {
		t.Error("a password reached the log")
	}
}

func TestPasswordChangeWrongCurrentPassword(t *testing.T) {
	f := newFixture(t)
	b := f.signedIn(t, "alice", "alice-password", "")
	before, _ := f.db.User("alice")
	for i := 1; i <= 5; i++ {
		resp := b.changePassword("not-the-password", strongPassword, strongPassword)
		page := body(resp)
		if resp.StatusCode != http.StatusUnauthorized || alertText(page) != msgCurrentPasswordWrong {
			t.Fatalf("attempt %d: %d %q", i, resp.StatusCode, alertText(page))
		}
		// Counted like a failed sign-in, towards the lockout.
		if u, _ := f.db.User("alice"); u.FailedLogins != i {
			t.Errorf("attempt %d: FailedLogins = %d", i, u.FailedLogins)
		}
	}
	u, _ := f.db.User("alice")
	if !u.LockedUntil.After(f.clock.now()) || u.PasswordHash != before.PasswordHash {
		t.Errorf("after 5 failures: LockedUntil %v, hash changed %v", u.LockedUntil, u.PasswordHash != before.PasswordHash)
	}
	// The per-account rate limit of sign-in applies too.
	resp := b.changePassword("alice-password", strongPassword, strongPassword)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("sixth attempt: %d Retry-After %q, want 429", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if !strings.Contains(f.logText(), `"event":"password_change_failed","user":"alice"`) {
		t.Error("no password_change_failed audit event")
	}
	if b.user() != "alice" {
		t.Error("failed attempts ended the session")
	}
}

// A locked account gets the same answer for the right password as for a
// wrong one.
func TestPasswordChangeLockedLooksLikeWrong(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Limits.PerUser = limiter.Rate{Period: time.Minute, Limit: 100} })
	b := f.signedIn(t, "alice", "alice-password", "")
	var wrong string
	for range 5 {
		resp := b.changePassword("wrong-password", strongPassword, strongPassword)
		wrong = alertText(body(resp))
	}
	resp := b.changePassword("alice-password", strongPassword, strongPassword)
	if got := alertText(body(resp)); resp.StatusCode != http.StatusUnauthorized || got != wrong || got == "" {
		t.Errorf("locked, right password: %d %q; wrong password: %q", resp.StatusCode, got, wrong)
	}
	if u, _ := f.db.User("alice"); u.PasswordChanged != (time.Time{}) {
		t.Error("a locked account's password was changed")
	}
}

func TestPasswordChangePolicy(t *testing.T) {
	f := newFixture(t)
	b := f.signedIn(t, "alice", "alice-password", "")
	before, _ := f.db.User("alice")
	for _, tc := range []struct{ name, current, pw, confirm, want string }{
		{"too short", "alice-password", "Xy7$abc", "Xy7$abc", "Use at least 8 characters."},
		{"common", "alice-password", "Password123", "Password123", string(msgPasswordCommon)},
		{"confirmation differs", "alice-password", strongPassword, strongPassword + "!", string(msgPasswordMismatch)},
		{"the email address", "alice-password", "alice@example.com", "alice@example.com", string(msgPasswordIsName)},
		{"no current password", "", strongPassword, strongPassword, msgCurrentPasswordEmpty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.t = t
			resp := b.changePassword(tc.current, tc.pw, tc.confirm)
			page := body(resp)
			if resp.StatusCode != http.StatusUnprocessableEntity || alertText(page) != htmlEscape(tc.want) {
				t.Errorf("%d %q, want 422 %q", resp.StatusCode, alertText(page), tc.want)
			}
			if !strings.Contains(page, `aria-describedby="password-error"`) {
				t.Error("the error is not tied to the form's fields")
			}
		})
	}
	b.t = t
	u, _ := f.db.User("alice")
	if u.PasswordHash != before.PasswordHash || u.FailedLogins != 0 {
		t.Errorf("refused changes altered the account: hash changed %v, FailedLogins %d", u.PasswordHash != before.PasswordHash, u.FailedLogins)
	}
}

// TestAccountFormsRefuseCSRF: a cross-site page cannot change the password
// or end sessions (SPEC §9).
func TestAccountFormsRefuseCSRF(t *testing.T) {
	f := newFixture(t)
	b := f.signedIn(t, "alice", "alice-password", "")
	other := f.signedIn(t, "alice", "alice-password", "")
	before, _ := f.db.User("alice")
	token := b.token(accountPath)
	pw := url.Values{"current": {"alice-password"}, "new": {strongPassword}, "confirm": {strongPassword}}
	withToken := func(v url.Values, tok string) url.Values {
		v = cloneValues(v)
		if tok != "" {
			v.Set("csrf", tok)
		}
		return v
	}
	for _, tc := range []struct {
		name, path string
		form       url.Values
		headers    []string
	}{
		{"password, cross-site", "/password", withToken(pw, token), []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}},
		{"password, no token", "/password", withToken(pw, ""), nil},
		{"password, wrong token", "/password", withToken(pw, "x"+token[1:]), nil},
		{"end others, cross-site", "/sessions/end-others", withToken(nil, token), []string{"Sec-Fetch-Site", "cross-site"}},
		{"end others, no token", "/sessions/end-others", withToken(nil, ""), nil},
		{"end one, no token", "/sessions/end", withToken(url.Values{"session": {other.ownHandle()}}, ""), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.t = t
			if resp := b.do("POST", accountPath+tc.path, tc.form, tc.headers...); resp.StatusCode != http.StatusForbidden {
				t.Errorf("%d, want 403", resp.StatusCode)
			}
		})
	}
	b.t = t
	if u, _ := f.db.User("alice"); u.PasswordHash != before.PasswordHash || u.FailedLogins != 0 {
		t.Error("a forged form changed the account")
	}
	if other.user() != "alice" || b.user() != "alice" {
		t.Error("a forged form ended a session")
	}
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, x := range v {
		out[k] = append([]string(nil), x...)
	}
	return out
}

func TestEndingSessions(t *testing.T) {
	f := newFixture(t)
	mine := f.signedIn(t, "alice", "alice-password", firefoxOnLinux)
	f.clock.add(time.Minute)
	phone := f.signedIn(t, "alice", "alice-password", safariOnIPhone)
	f.clock.add(time.Minute)
	office := f.signedIn(t, "alice", "alice-password", chromeOnWindows)
	bob := f.signedIn(t, "bob", "bob-password", "")

	rows := mine.sessionRows()
	if len(rows) != 3 {
		t.Fatalf("alice sees %d sessions, want 3", len(rows))
	}
	phoneHandle, bobHandle := phone.ownHandle(), bob.ownHandle()
	if !strings.Contains(rows[phoneHandle], "Safari on iPhone") || strings.Contains(rows[phoneHandle], "This device") {
		t.Errorf("phone row: %s", rows[phoneHandle])
	}
	// The handle the page marks as this device is the store's for this cookie.
	list, _ := f.db.UserSessions("alice")
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: f.ui.CookieName(), Value: mine.cookies[f.ui.CookieName()]})
	if own := sessionHandle(f.ui.sessionID(r)); own != mine.ownHandle() || !containsHandle(list, own) {
		t.Errorf("sessionHandle %q does not match the store's handles", own)
	}

	// Ending one other session.
	resp := mine.endSession(phoneHandle)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != accountPath+"?done=session" {
		t.Fatalf("end phone: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if phone.user() != "" || mine.user() != "alice" || office.user() != "alice" {
		t.Errorf("after ending the phone: phone %q, mine %q, office %q", phone.user(), mine.user(), office.user())
	}

	// Another user's session, a made-up handle and an ended one: nothing ends.
	for _, h := range []string{bobHandle, "00112233445566778899aabbccddeeff", phoneHandle, "", strings.Repeat("a", 100)} {
		resp := mine.endSession(h)
		if page := body(resp); resp.StatusCode != http.StatusNotFound || alertText(page) != msgSessionGone {
			t.Errorf("handle %q: %d %q, want 404", h, resp.StatusCode, alertText(page))
		}
	}
	if bob.user() != "bob" || office.user() != "alice" || mine.user() != "alice" {
		t.Error("a refused handle ended a session")
	}
	// Bob cannot end Alice's sessions either.
	if resp := bob.endSession(mine.ownHandle()); resp.StatusCode != http.StatusNotFound || mine.user() != "alice" {
		t.Errorf("bob ending alice's session: %d", resp.StatusCode)
	}

	// Ending every other session.
	resp = mine.do("POST", accountPath+"/sessions/end-others", url.Values{"csrf": {mine.token(accountPath)}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != accountPath+"?done=others" {
		t.Fatalf("end others: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if office.user() != "" || mine.user() != "alice" || bob.user() != "bob" {
		t.Errorf("after ending the others: office %q, mine %q, bob %q", office.user(), mine.user(), bob.user())
	}
	if rows := mine.sessionRows(); len(rows) != 1 {
		t.Errorf("%d sessions left, want 1", len(rows))
	}

	// Ending this device's own session signs it out.
	resp = mine.endSession(mine.ownHandle())
	if page := body(resp); resp.StatusCode != http.StatusOK || !strings.Contains(page, "You are signed out") {
		t.Errorf("end own session: %d\n%s", resp.StatusCode, page)
	}
	if _, ok := mine.cookies[f.ui.CookieName()]; ok || mine.user() != "" {
		t.Error("ending this device's session left it signed in")
	}
	logs := f.logText()
	for _, want := range []string{`"event":"session_ended","user":"alice"`, `"event":"sessions_ended","user":"alice","ip":"192.0.2.10","count":1`,
		`"event":"session_end_refused","user":"alice"`, `"event":"session_end_refused","user":"bob"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s", want)
		}
	}
}

func containsHandle(list []store.Session, h string) bool {
	for _, s := range list {
		if s.ID == h {
			return true
		}
	}
	return false
}

func TestDeviceName(t *testing.T) {
	for _, tc := range []struct{ ua, want string }{
		{firefoxOnLinux, "Firefox on Linux"},
		{safariOnIPhone, "Safari on iPhone"},
		{chromeOnWindows, "Chrome on Windows"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", "Chrome on Linux"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", "Safari on macOS"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0", "Edge on Windows"},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36", "Chrome on Android"},
		{"Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0 Mobile/15E148 Safari/604.1", "Chrome on iPad"},
		{"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", "Chrome on ChromeOS"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 OPR/111.0.0.0", "Opera on Windows"},
		{"curl/8.8.0", "curl"},
		{"", "Unknown device"},
		{"Something (Linux)", "A browser on Linux"},
	} {
		if got := deviceName(tc.ua); got != tc.want {
			t.Errorf("deviceName(%q) = %q, want %q", tc.ua, got, tc.want)
		}
	}
}
