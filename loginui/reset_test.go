package loginui

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ulule/limiter/v3"

	"github.com/gatehouse-auth/gatehouse/store"
)

// requestReset posts the reset form and waits for the mail sent after
// the answer.
func (f *fixture) requestReset(t *testing.T, b *browser, login string) *http.Response {
	t.Helper()
	resp := b.do("POST", "/.gatehouse/reset", url.Values{"login": {login}, "csrf": {b.token("/.gatehouse/login")}})
	f.ui.background.Wait()
	return resp
}

// resetLink requests a reset for login and returns the mailed token.
func (f *fixture) resetLink(t *testing.T, mail *outbox, login, to string) string {
	t.Helper()
	before := len(mail.to(to))
	if resp := f.requestReset(t, f.browser(t), login); resp.StatusCode != http.StatusOK {
		t.Fatalf("reset request: %d", resp.StatusCode)
	}
	mails := mail.to(to)
	if len(mails) != before+1 {
		t.Fatalf("mails to %s: %d, want %d", to, len(mails), before+1)
	}
	path, token := linkIn(t, mails[len(mails)-1])
	if path != "/.gatehouse/reset/confirm" {
		t.Fatalf("link to %s", path)
	}
	return token
}

func (b *browser) setPassword(path, token, pw, confirm string) *http.Response {
	b.t.Helper()
	return b.do("POST", path, url.Values{"token": {token}, "password": {pw}, "confirm": {confirm}, "csrf": {b.token("/.gatehouse/login")}})
}

// TestResetAnswersAlike pins down account enumeration through the reset
// form: a known address, an unknown one, a username, a disabled or a
// pending account all get the same status and page.
func TestResetAnswersAlike(t *testing.T) {
	mail := &outbox{}
	f := newMailFixture(t, mail)
	if _, err := f.db.UpdateUser("dora", func(x *store.User) error { x.Email = "dora@example.com"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := f.db.CreateUser(store.User{Username: "paula", Email: "paula@example.com", Pending: true, PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}
	var want string
	for _, tc := range []struct {
		login, to string
	}{
		{"bob@example.com", "bob@example.com"},
		{"nobody@example.com", ""},
		{"BOB", "bob@example.com"},
		{"nobody", ""},
		{"dora@example.com", ""}, // disabled
		{"paula", ""},            // pending approval
	} {
		before := mail.count()
		resp := f.requestReset(t, f.browser(t), tc.login)
		page := tokenRE.ReplaceAllString(body(resp), "")
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "If an account exists for what you entered") {
			t.Fatalf("%s: %d\n%s", tc.login, resp.StatusCode, page)
		}
		if want == "" {
			want = page
		} else if page != want {
			t.Errorf("%s: the page differs:\n%s\nwant\n%s", tc.login, page, want)
		}
		sent := mail.count() - before
		if tc.to == "" && sent != 0 {
			t.Errorf("%s: %d mails sent, want none", tc.login, sent)
		}
		if tc.to != "" && (sent != 1 || len(mail.to(tc.to)) == 0) {
			t.Errorf("%s: %d mails sent, want 1 to %s", tc.login, sent, tc.to)
		}
	}
	m := mail.to("bob@example.com")[0]
	if !strings.Contains(m.Text, "192.0.2.10") || !strings.Contains(m.Text, "works for 1 hour") {
		t.Errorf("reset mail:\n%s", m.Text)
	}
	if !strings.Contains(f.logText(), `"event":"password_reset_requested","user":"nobody@example.com","ip":"192.0.2.10","mailed":false`) {
		t.Errorf("no audit event:\n%s", f.logText())
	}
}

// TestResetLinkWorksOnceAndEndsSessions: the link sets a password once,
// lifts a lockout and ends every session (SPEC §7).
func TestResetLinkWorksOnceAndEndsSessions(t *testing.T) {
	mail := &outbox{}
	f := newMailFixture(t, mail)
	laptop, phone := f.browser(t), f.browser(t)
	laptop.signIn("bob", "bob-password", "/")
	phone.signIn("bob@example.com", "bob-password", "/")
	if laptop.user() != "bob" || phone.user() != "bob" {
		t.Fatal("bob is not signed in twice")
	}
	for range 5 {
		f.browser(t).signIn("bob", "wrong-password", "/")
	}
	if x, _ := f.db.User("bob"); !x.LockedUntil.After(f.clock.now()) {
		t.Fatal("bob is not locked")
	}

	token := f.resetLink(t, mail, "bob@example.com", "bob@example.com")
	b := f.browser(t)
	for range 2 { // opening the link spends nothing
		wantPage(t, b.do("GET", "/.gatehouse/reset/confirm?token="+token, nil), http.StatusOK,
			`action="/.gatehouse/reset/confirm"`, `name="token" value="`+token+`"`, `autocomplete="new-password"`, `value="bob" hidden`)
	}
	// A refused password leaves the link working.
	wantPage(t, b.setPassword("/.gatehouse/reset/confirm", token, "password123", "password123"), http.StatusBadRequest, htmlEscape(string(msgPasswordCommon)), `name="token" value="`+token+`"`)
	wantPage(t, b.setPassword("/.gatehouse/reset/confirm", token, "tulip-bicycle-42", "tulip-bicycle-4"), http.StatusBadRequest, htmlEscape(string(msgPasswordMismatch)))
	wantPage(t, b.setPassword("/.gatehouse/reset/confirm", token, "tulip-bicycle-42", "tulip-bicycle-42"), http.StatusOK,
		"Your password is changed", `href="/.gatehouse/login"`)

	if laptop.user() != "" || phone.user() != "" {
		t.Error("a session survived the reset")
	}
	x, _ := f.db.User("bob")
	if x.FailedLogins != 0 || !x.LockedUntil.IsZero() || !x.EmailVerified || !x.PasswordChanged.Equal(f.clock.now()) {
		t.Errorf("after the reset: %+v", x)
	}
	if !strings.Contains(f.logText(), `"event":"password_reset","user":"bob","ip":"192.0.2.10","sessions_ended":2`) {
		t.Errorf("no audit event:\n%s", f.logText())
	}
	if resp := f.browser(t).signIn("bob", "bob-password", "/"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the old password still works: %d", resp.StatusCode)
	}
	if resp := f.browser(t).signIn("bob", "tulip-bicycle-42", "/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the new password does not work: %d", resp.StatusCode)
	}
	// Used once: the link is dead.
	wantPage(t, b.setPassword("/.gatehouse/reset/confirm", token, "another-secret-9", "another-secret-9"), http.StatusBadRequest, msgLinkInvalid)
	wantPage(t, b.do("GET", "/.gatehouse/reset/confirm?token="+token, nil), http.StatusBadRequest, msgLinkInvalid)
	if resp := f.browser(t).signIn("bob", "another-secret-9", "/"); resp.StatusCode != http.StatusUnauthorized {
		t.Error("a used link set a password")
	}
}

// TestResetLinkExpires with the injected clock.
func TestResetLinkExpires(t *testing.T) {
	mail := &outbox{}
	f := newMailFixture(t, mail, func(c *Config) { c.TokenTTL = 30 * time.Minute })
	token := f.resetLink(t, mail, "bob", "bob@example.com")
	if m := mail.to("bob@example.com")[0]; !strings.Contains(m.Text, "works for 30 minutes") {
		t.Errorf("the mail states another lifetime:\n%s", m.Text)
	}
	b := f.browser(t)
	f.clock.add(29 * time.Minute)
	wantPage(t, b.do("GET", "/.gatehouse/reset/confirm?token="+token, nil), http.StatusOK)
	f.clock.add(time.Minute)
	wantPage(t, b.do("GET", "/.gatehouse/reset/confirm?token="+token, nil), http.StatusBadRequest, msgLinkInvalid)
	wantPage(t, b.setPassword("/.gatehouse/reset/confirm", token, "tulip-bicycle-42", "tulip-bicycle-42"), http.StatusBadRequest, msgLinkInvalid)
	if resp := f.browser(t).signIn("bob", "bob-password", "/"); resp.StatusCode != http.StatusSeeOther {
		t.Error("an expired link changed the password")
	}
}

// TestTokensOpenOnlyTheirPurpose: a reset link does not verify an address
// or accept an invitation, and garbage is refused politely.
func TestTokensOpenOnlyTheirPurpose(t *testing.T) {
	mail := &outbox{}
	f := newMailFixture(t, mail)
	reset := f.resetLink(t, mail, "bob", "bob@example.com")
	verify, err := f.db.CreateToken("bob", store.PurposeVerify, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b := f.browser(t)
	for _, tc := range []struct{ path, token string }{
		{"/.gatehouse/reset/confirm", verify},
		{"/.gatehouse/invite", reset},
		{"/.gatehouse/invite", verify},
	} {
		wantPage(t, b.do("GET", tc.path+"?token="+tc.token, nil), http.StatusBadRequest, msgLinkInvalid)
		wantPage(t, b.setPassword(tc.path, tc.token, "tulip-bicycle-42", "tulip-bicycle-42"), http.StatusBadRequest, msgLinkInvalid)
	}
	wantPage(t, b.do("GET", "/.gatehouse/verify?token="+reset, nil), http.StatusBadRequest, msgLinkInvalid)
	wantPage(t, b.do("POST", "/.gatehouse/verify", url.Values{"token": {reset}, "csrf": {b.token("/.gatehouse/login")}}), http.StatusBadRequest, msgLinkInvalid)
	for _, garbage := range []string{"", "x", strings.Repeat("A", 43), strings.Repeat("A", 5000), "%00%0d%0a", "<script>alert(1)</script>", "ääää"} {
		for _, path := range []string{"/.gatehouse/verify", "/.gatehouse/reset/confirm", "/.gatehouse/invite"} {
			page := wantPage(t, b.do("GET", path+"?token="+url.QueryEscape(garbage), nil), http.StatusBadRequest, msgLinkInvalid)
			if strings.Contains(page, "<script>alert") {
				t.Error("the token was echoed unescaped")
			}
			wantPage(t, b.setPassword(path, garbage, "tulip-bicycle-42", "tulip-bicycle-42"), http.StatusBadRequest)
		}
	}
	// Both real tokens still work for their own purpose.
	wantPage(t, b.do("GET", "/.gatehouse/reset/confirm?token="+reset, nil), http.StatusOK)
	wantPage(t, b.do("GET", "/.gatehouse/verify?token="+verify, nil), http.StatusOK)
	if x, _ := f.db.User("bob"); !strings.HasPrefix(x.PasswordHash, "$argon2id$") {
		t.Error("bob's password hash changed")
	}
}

// A mailbox gets at most the per-account rate of reset mails. The limit
// is silent: a known account, an unknown name and an account whose
// limit is used up all get the same page, so neither the answer nor its
// status tells whether a username and an address belong together.
func TestResetRequestsAreRateLimited(t *testing.T) {
	mail := &outbox{}
	f := newMailFixture(t, mail)
	var pages []string
	for _, login := range []string{"bob@example.com", "bob", "nobody@example.com"} {
		for range 6 {
			resp := f.requestReset(t, f.browser(t), login)
			pages = append(pages, wantPage(t, resp, http.StatusOK, "Check your email"))
			if resp.Header.Get("Retry-After") != "" {
				t.Errorf("%s: Retry-After on a reset request", login)
			}
		}
	}
	for _, p := range pages[1:] {
		if tokenRE.ReplaceAllString(p, "") != tokenRE.ReplaceAllString(pages[0], "") {
			t.Fatalf("the answers differ:\n%s\n---\n%s", pages[0], p)
		}
	}
	if n := len(mail.to("bob@example.com")); n != 5 {
		t.Errorf("mails to bob: %d, want 5 (the limit, for his address and his name together)", n)
	}
	// Reset requests are not failed sign-ins.
	if resp := f.browser(t).signIn("bob", "bob-password", "/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-in after reset requests: %d", resp.StatusCode)
	}

	perIP := newMailFixture(t, mail, func(c *Config) { c.Limits.PerIP = limiter.Rate{Period: time.Minute, Limit: 2} })
	b := perIP.browser(t)
	perIP.requestReset(t, b, "a@example.com")
	perIP.requestReset(t, b, "b@example.com")
	wantPage(t, perIP.requestReset(t, b, "c@example.com"), http.StatusTooManyRequests)
}

func TestResetWithoutMailer(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	for _, resp := range []*http.Response{
		b.do("GET", "/.gatehouse/reset", nil),
		b.do("POST", "/.gatehouse/reset", url.Values{"login": {"bob"}, "csrf": {b.token("/.gatehouse/login")}}),
	} {
		page := wantPage(t, resp, http.StatusOK, "not available here", "ask an administrator")
		if strings.Contains(page, "<form") {
			t.Errorf("a form without mail:\n%s", page)
		}
	}
}

// TestResetSurvivesAFailingMailer: the answer is the same, the failure is
// logged, the account is untouched.
func TestResetSurvivesAFailingMailer(t *testing.T) {
	mail := &outbox{fail: errors.New("smtp: dial tcp: connection refused")}
	f := newMailFixture(t, mail)
	wantPage(t, f.requestReset(t, f.browser(t), "bob"), http.StatusOK, "If an account exists")
	logs := f.logText()
	if !strings.Contains(logs, "password reset: the mail was not sent") || !strings.Contains(logs, "connection refused") {
		t.Errorf("no clear log line:\n%s", logs)
	}
	if resp := f.browser(t).signIn("bob", "bob-password", "/"); resp.StatusCode != http.StatusSeeOther {
		t.Error("bob's password changed")
	}
}

// TestResetMailNeverPointsElsewhere pins down password-reset poisoning: a
// forged Host header must not put the attacker's host in the mailed link.
func TestResetMailNeverPointsElsewhere(t *testing.T) {
	mail := &outbox{}
	f := newMailFixture(t, mail)
	b := f.browser(t)
	token := b.token("/.gatehouse/login")
	r := httptest.NewRequest("POST", "https://evil.example/.gatehouse/reset", strings.NewReader(url.Values{"login": {"bob"}, "csrf": {token}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for name, value := range b.cookies {
		r.AddCookie(&http.Cookie{Name: name, Value: value})
	}
	w := httptest.NewRecorder()
	f.ui.Handler().ServeHTTP(w, r)
	f.ui.background.Wait()
	if w.Code != http.StatusOK {
		t.Errorf("status %d", w.Code)
	}
	if n := mail.count(); n != 0 {
		t.Errorf("%d mails sent for a foreign host", n)
	}
}

// TestInvitations: with a Mailer the admin can invite; the link sets the
// first password and confirms the address.
func TestInvitations(t *testing.T) {
	mail := &outbox{}
	f := newMailFixture(t, mail)
	alice := f.adminSignIn(t, "alice")
	wantPage(t, alice.do("GET", "/.gatehouse/admin/new", nil), http.StatusOK, `name="invite"`)
	form := url.Values{"username": {"olga"}, "email": {"olga@example.com"}, "display_name": {"Olga"}, "invite": {"1"}}
	wantAdminRedirect(t, alice.adminPost("/.gatehouse/admin/new", form), http.StatusSeeOther, "/.gatehouse/admin/users/olga?done=invited")
	mails := mail.to("olga@example.com")
	if len(mails) != 1 || !strings.Contains(mails[0].Text, "username olga") || !strings.Contains(mails[0].Text, "works for 3 days") {
		t.Fatalf("invitation mails: %+v", mails)
	}
	path, token := linkIn(t, mails[0])
	if path != "/.gatehouse/invite" {
		t.Fatalf("link to %s", path)
	}
	if resp := f.browser(t).signIn("olga", "", "/"); resp.StatusCode != http.StatusUnauthorized {
		t.Error("an invited user signed in without a password")
	}
	f.clock.add(71 * time.Hour)
	b := f.browser(t)
	wantPage(t, b.do("GET", path+"?token="+token, nil), http.StatusOK, "Welcome, olga!", `action="/.gatehouse/invite"`)
	wantPage(t, b.setPassword(path, token, "tulip-bicycle-42", "tulip-bicycle-42"), http.StatusOK, "Your password is set")
	x, _ := f.db.User("olga")
	if !x.EmailVerified || !strings.HasPrefix(x.PasswordHash, "$argon2id$") {
		t.Errorf("after the invitation: %+v", x)
	}
	if !strings.Contains(f.logText(), `"event":"invitation_accepted","user":"olga"`) {
		t.Error("no invitation_accepted audit event")
	}
	if resp := f.browser(t).signIn("olga", "tulip-bicycle-42", "/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the invited user cannot sign in: %d", resp.StatusCode)
	}
	wantPage(t, b.setPassword(path, token, "another-secret-9", "another-secret-9"), http.StatusBadRequest, msgLinkInvalid)

	// A late invitation link does not replace a password the admin set.
	late, err := f.db.CreateToken("olga", store.PurposeInvite, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wantPage(t, b.do("GET", path+"?token="+late, nil), http.StatusBadRequest, msgLinkInvalid)

	// A failed invitation keeps the user and tells the admin.
	mail.setFail(errors.New("smtp: 554 rejected"))
	alice = f.adminSignIn(t, "alice") // the clock moved past her idle timeout
	form.Set("username", "pete")
	form.Set("email", "pete@example.com")
	wantAdminRedirect(t, alice.adminPost("/.gatehouse/admin/new", form), http.StatusSeeOther, "/.gatehouse/admin/users/pete?done=uninvited")
	if _, err := f.db.User("pete"); err != nil {
		t.Errorf("the user was lost: %v", err)
	}
	if !strings.Contains(f.logText(), "554 rejected") {
		t.Error("the failure is not logged")
	}
}

// TestResetAnswersBeforeASlowMailer: the answer does not wait for the
// mail, so a slow server cannot time which accounts exist.
func TestResetAnswersBeforeASlowMailer(t *testing.T) {
	mail := &outbox{slow: make(chan struct{})}
	f := newMailFixture(t, mail)
	b := f.browser(t)
	done := make(chan int, 1)
	go func() {
		done <- b.do("POST", "/.gatehouse/reset", url.Values{"login": {"bob"}, "csrf": {b.token("/.gatehouse/login")}}).StatusCode
	}()
	select {
	case status := <-done:
		if status != http.StatusOK {
			t.Errorf("status %d", status)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the answer waited for the mail")
	}
	if n := mail.count(); n != 0 {
		t.Errorf("%d mails already sent", n)
	}
	close(mail.slow)
	f.ui.background.Wait()
	if n := len(mail.to("bob@example.com")); n != 1 {
		t.Errorf("mails to bob: %d, want 1", n)
	}
}

// TestTokenPagesLeakNoToken pins down a token leaking through Referer: a
// page whose address holds a live token (reset, invitation, verification)
// must tell the browser never to send its path and query onwards, in the
// header and in the page's own <meta name="referrer"> (which would
// override the header), and must load nothing from another origin.
// "same-origin" is not enough: every app behind this host is the same
// origin, and would get the link in Referer.
func TestTokenPagesLeakNoToken(t *testing.T) {
	mail := &outbox{}
	f := newMailFixture(t, mail)
	if err := f.db.CreateUser(store.User{Username: "olga", Email: "olga@example.com"}); err != nil {
		t.Fatal(err)
	}
	pages := map[string]string{}
	for path, mint := range map[string][2]string{
		"/.gatehouse/reset/confirm": {"bob", store.PurposeReset},
		"/.gatehouse/invite":        {"olga", store.PurposeInvite},
		"/.gatehouse/verify":        {"alice", store.PurposeVerify},
	} {
		token, err := f.db.CreateToken(mint[0], mint[1], time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		pages[path+"?token="+token] = token
	}
	safe := map[string]bool{"no-referrer": true, "origin": true, "strict-origin": true}
	metaRE := regexp.MustCompile(`<meta name="referrer" content="([^"]*)">`)
	for target, token := range pages {
		resp := f.browser(t).do("GET", target, nil)
		page := wantPage(t, resp, http.StatusOK, token)
		if p := resp.Header.Get("Referrer-Policy"); !safe[p] {
			t.Errorf("%s: Referrer-Policy %q sends the token onwards", target[:strings.IndexByte(target, '?')], p)
		}
		for _, m := range metaRE.FindAllStringSubmatch(page, -1) {
			if !safe[m[1]] {
				t.Errorf("%s: <meta name=referrer content=%q> sends the token onwards", target[:strings.IndexByte(target, '?')], m[1])
			}
		}
		for _, bad := range []string{`src="http`, `href="http`, `src="//`, `href="//`, `action="http`, `action="//`} {
			if strings.Contains(page, bad) {
				t.Errorf("%s: loads or links another origin (%s)", target, bad)
			}
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("%s: CSP %q", target, csp)
		}
	}
	// The rest of the gateway keeps its policy.
	if p := f.browser(t).do("GET", "/.gatehouse/login", nil).Header.Get("Referrer-Policy"); p != "same-origin" {
		t.Errorf("sign-in page: Referrer-Policy %q", p)
	}
}

// TestLinksOnlyForAccountsThatMayUseThem pins down what a live reset link
// must not open: an account disabled or pending approval since the link
// was mailed, or one deleted and created again under the same name (a
// different person); and that a link raced from many tabs sets one
// password, and that neither a token nor a session of the deleted account
// survives in the log or the store.
func TestLinksOnlyForAccountsThatMayUseThem(t *testing.T) {
	mail := &outbox{}
	f := newMailFixture(t, mail)
	const pw = "tulip-bicycle-42"
	token := f.resetLink(t, mail, "bob", "bob@example.com")
	for _, state := range []struct {
		name string
		set  func(x *store.User)
	}{
		{"disabled", func(x *store.User) { x.Disabled, x.Pending = true, false }},
		{"pending", func(x *store.User) { x.Disabled, x.Pending = false, true }},
	} {
		if _, err := f.db.UpdateUser("bob", func(x *store.User) error { state.set(x); return nil }); err != nil {
			t.Fatal(err)
		}
		wantPage(t, f.browser(t).do("GET", "/.gatehouse/reset/confirm?token="+token, nil), http.StatusBadRequest, msgLinkInvalid)
		wantPage(t, f.browser(t).setPassword("/.gatehouse/reset/confirm", token, pw, pw), http.StatusBadRequest, msgLinkInvalid)
	}
	if _, err := f.db.UpdateUser("bob", func(x *store.User) error { x.Disabled, x.Pending = false, false; return nil }); err != nil {
		t.Fatal(err)
	}

	// Deleted and created again: neither the old link nor the old cookie works.
	old := f.browser(t)
	old.signIn("bob", "bob-password", "/")
	if old.user() != "bob" {
		t.Fatal("bob cannot sign in")
	}
	if err := f.db.DeleteUser("bob"); err != nil {
		t.Fatal(err)
	}
	hash, _ := store.HashPassword("another-bob-77")
	if err := f.db.CreateUser(store.User{Username: "bob", Email: "bob@example.com", PasswordHash: hash}); err != nil {
		t.Fatal(err)
	}
	if got := old.user(); got != "" {
		t.Errorf("the deleted account's session came back as %q", got)
	}
	wantPage(t, f.browser(t).setPassword("/.gatehouse/reset/confirm", token, pw, pw), http.StatusBadRequest, msgLinkInvalid)

	// One link, many tabs at once: one password is set.
	token = f.resetLink(t, mail, "bob", "bob@example.com")
	var wg sync.WaitGroup
	var ok atomic.Int32
	for range 12 {
		b := f.browser(t)
		form := url.Values{"token": {token}, "password": {pw}, "confirm": {pw}, "csrf": {b.token("/.gatehouse/login")}}
		wg.Go(func() {
			if b.do("POST", "/.gatehouse/reset/confirm", form).StatusCode == http.StatusOK {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Errorf("%d posts of one link succeeded, want 1", ok.Load())
	}
	if strings.Contains(f.logText(), token) {
		t.Error("a token reached the log")
	}
}

// TestMailLinksFailClosedWithoutAppHosts pins down password reset
// poisoning through wiring: a UI built with a Mailer but no IsAppHost
// must not take a mailed link's host from the request's Host header,
// which the requester chooses.
func TestMailLinksFailClosedWithoutAppHosts(t *testing.T) {
	mail := &outbox{}
	f := newMailFixture(t, mail)
	f.ui.isAppHost = nil
	b := f.browser(t)
	r := httptest.NewRequest("POST", "https://evil.example/.gatehouse/reset",
		strings.NewReader(url.Values{"login": {"bob"}, "csrf": {b.token("/.gatehouse/login")}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for name, value := range b.cookies {
		r.AddCookie(&http.Cookie{Name: name, Value: value})
	}
	f.ui.Handler().ServeHTTP(httptest.NewRecorder(), r)
	f.ui.background.Wait()
	for _, m := range mail.to("bob@example.com") {
		if strings.Contains(m.Text, "evil.example") {
			t.Errorf("a reset link points at the requester's host:\n%s", m.Text)
		}
	}
}

// TestAnInvitationCanBeSentAgain: when the first link expired or went
// astray, the admin sends a new one from the user's page; it replaces the
// old link. A user who has a password gets no invitation.
func TestAnInvitationCanBeSentAgain(t *testing.T) {
	mail := &outbox{}
	f := newMailFixture(t, mail)
	alice := f.adminSignIn(t, "alice")
	form := url.Values{"username": {"pia"}, "email": {"pia@example.com"}, "invite": {"1"}}
	wantAdminRedirect(t, alice.adminPost("/.gatehouse/admin/new", form), http.StatusSeeOther, "/.gatehouse/admin/users/pia?done=invited")
	_, first := linkIn(t, mail.to("pia@example.com")[0])
	f.clock.add(73 * time.Hour) // the first link has expired, and so has alice's session
	alice = f.adminSignIn(t, "alice")

	wantPage(t, alice.do("GET", "/.gatehouse/admin/users/pia", nil), http.StatusOK, `action="/.gatehouse/admin/users/pia/invite"`, "Send a new invitation")
	wantAdminRedirect(t, alice.adminPost("/.gatehouse/admin/users/pia/invite", url.Values{}), http.StatusSeeOther, "/.gatehouse/admin/users/pia?done=reinvited")
	mails := mail.to("pia@example.com")
	if len(mails) != 2 {
		t.Fatalf("%d mails to pia, want 2", len(mails))
	}
	path, second := linkIn(t, mails[1])
	b := f.browser(t)
	wantPage(t, b.do("GET", path+"?token="+first, nil), http.StatusBadRequest, msgLinkInvalid)
	wantPage(t, b.setPassword(path, second, "tulip-bicycle-42", "tulip-bicycle-42"), http.StatusOK, "Your password is set")
	if !strings.Contains(f.logText(), `"event":"admin_user_invited","admin":"alice","user":"pia"`) {
		t.Errorf("no audit event for the new invitation:\n%s", f.logText())
	}

	// Now pia has a password: no button, and a forged post is refused.
	if page := body(alice.do("GET", "/.gatehouse/admin/users/pia", nil)); strings.Contains(page, "/pia/invite") {
		t.Error("a user with a password is offered an invitation")
	}
	wantPage(t, alice.adminPost("/.gatehouse/admin/users/pia/invite", url.Values{}), http.StatusConflict, msgAdminNoInvite)
	if n := len(mail.to("pia@example.com")); n != 2 {
		t.Errorf("%d mails to pia after the refused invitation", n)
	}
}
