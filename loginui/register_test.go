package loginui

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ulule/limiter/v3"

	"github.com/gatehouse-auth/gatehouse/store"
)

// outbox is the consumer-side double of Mailer: it keeps what would be
// sent (after the same Check a transport runs) and fails when fail says
// so. The SMTP and file transports are tested in cmd/gatehouse.
type outbox struct {
	mu   sync.Mutex
	sent []Message
	fail error
	slow chan struct{} // when set, Send waits until it is closed (a slow server)
}

func (o *outbox) Send(ctx context.Context, m Message) error {
	if err := m.Check(); err != nil {
		return err
	}
	if o.slow != nil {
		select {
		case <-o.slow:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail != nil {
		return o.fail
	}
	o.sent = append(o.sent, m)
	return nil
}

func (o *outbox) setFail(err error) { o.mu.Lock(); o.fail = err; o.mu.Unlock() }

// to returns the mails sent to addr so far.
func (o *outbox) to(addr string) []Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []Message
	for _, m := range o.sent {
		if m.To == addr {
			out = append(out, m)
		}
	}
	return out
}

func (o *outbox) count() int { o.mu.Lock(); defer o.mu.Unlock(); return len(o.sent) }

// newMailFixture is the common fixture with a Mailer and room for many
// form posts from the one test address. It waits for mails sent in the
// background before the database closes.
func newMailFixture(t *testing.T, m Mailer, mutate ...func(*Config)) *fixture {
	t.Helper()
	mutate = append([]func(*Config){func(c *Config) { c.Limits.PerIP = limiter.Rate{Period: time.Minute, Limit: 1000} }}, mutate...)
	f := newFixture(t, mutate...)
	cfg := Config{Secrets: [][]byte{[]byte(secret)}, HSTS: true}
	for _, fn := range mutate {
		fn(&cfg)
	}
	ui, err := New(cfg, Deps{
		DB: f.db, Now: f.clock.now, Mailer: m,
		Log:       slog.New(slog.NewJSONHandler(lockedWriter{f.mu, f.logs}, nil)),
		ClientIP:  func(r *http.Request) netip.Addr { return netip.MustParseAddr("192.0.2.10") },
		IsAppHost: func(h string) bool { return h == "app.example.com" },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.ui = ui
	t.Cleanup(ui.Drain)
	return f
}

func registration(c *Config) { c.Registration = true }

var mailLinkRE = regexp.MustCompile(`https://app\.example\.com(/\.gatehouse/[a-z/]+)\?token=([A-Za-z0-9_-]+)`)

// linkIn returns the path and token of the link in a mail's text.
func linkIn(t *testing.T, m Message) (path, token string) {
	t.Helper()
	match := mailLinkRE.FindStringSubmatch(m.Text)
	if match == nil {
		t.Fatalf("no link in the mail:\n%s", m.Text)
	}
	if !strings.Contains(m.HTML, match[0]) {
		t.Errorf("the HTML body lacks the link %s", match[0])
	}
	return match[1], match[2]
}

func (b *browser) register(username, email, name, password, confirm string, headers ...string) *http.Response {
	b.t.Helper()
	form := url.Values{"username": {username}, "email": {email}, "display_name": {name},
		"password": {password}, "confirm": {confirm}, "csrf": {b.token("/.gatehouse/login")}}
	return b.do("POST", "/.gatehouse/register", form, headers...)
}

func wantPage(t *testing.T, resp *http.Response, status int, wants ...string) string {
	t.Helper()
	page := body(resp)
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d\n%s", resp.StatusCode, status, page)
	}
	for _, want := range wants {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	return page
}

// TestPendingUsersCannotSignIn: an account waiting for approval fails
// sign-in like a wrong password, and a session it holds stops working.
func TestPendingUsersCannotSignIn(t *testing.T) {
	f := newAdminFixture(t)
	b := f.browser(t)
	if resp := b.signIn("bob", "bob-password", "/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	if _, err := f.db.UpdateUser("bob", func(x *store.User) error { x.Pending = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if b.user() != "" {
		t.Error("the session of a pending user still works")
	}
	wrong := body(f.browser(t).signIn("bob", "wrong-password", "/"))
	resp := f.browser(t).signIn("bob", "bob-password", "/")
	page := body(resp)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, msgSignInFailed) {
		t.Fatalf("pending sign-in: %d\n%s", resp.StatusCode, page)
	}
	if tokenRE.ReplaceAllString(page, "") != tokenRE.ReplaceAllString(wrong, "") {
		t.Error("a pending account's page differs from a wrong password's")
	}
	if _, err := f.db.UpdateUser("bob", func(x *store.User) error { x.Pending = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if resp := f.browser(t).signIn("bob", "bob-password", "/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("approved sign-in: %d", resp.StatusCode)
	}
}

func TestRegistrationIsOffByDefault(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	for _, method := range []string{"GET", "POST"} {
		resp := b.do(method, "/.gatehouse/register", url.Values{"csrf": {b.token("/.gatehouse/login")}, "username": {"zed"}})
		wantPage(t, resp, http.StatusNotFound, "Page not found")
	}
	login := body(b.do("GET", "/.gatehouse/login", nil))
	if strings.Contains(login, "/.gatehouse/register") || strings.Contains(login, "/.gatehouse/reset") {
		t.Errorf("the sign-in page links to registration or reset without them:\n%s", login)
	}
	if _, err := f.db.User("zed"); !errors.Is(err, store.ErrNotFound) {
		t.Error("an account was created with registration off")
	}
}

func TestRegistrationHappyPath(t *testing.T) {
	mail := &outbox{}
	f := newMailFixture(t, mail, registration, func(c *Config) { c.DefaultRoles = []string{"reader", "wiki"} })
	b := f.browser(t)
	wantPage(t, b.do("GET", "/.gatehouse/login", nil), http.StatusOK,
		`<a href="/.gatehouse/reset">Forgot your password?</a>`, `<a href="/.gatehouse/register">Create an account</a>`)
	wantPage(t, b.do("GET", "/.gatehouse/register", nil), http.StatusOK,
		`action="/.gatehouse/register"`, `autocomplete="username"`, `autocomplete="email"`, `autocomplete="new-password"`, `minlength="8"`)

	page := wantPage(t, b.register(" Erin.M ", "Erin@Example.com", "Erin M", "tulip-bicycle-42", "tulip-bicycle-42"), http.StatusOK,
		"Check your email", msgRegisteredMail)
	if strings.Contains(page, "tulip-bicycle") {
		t.Error("the password was echoed")
	}
	x, err := f.db.User("erin.m")
	if err != nil {
		t.Fatal(err)
	}
	if x.Email != "erin@example.com" || x.DisplayName != "Erin M" || x.Pending || x.EmailVerified ||
		!slices.Equal(x.Roles, []string{"reader", "wiki"}) || !strings.HasPrefix(x.PasswordHash, "$argon2id$") {
		t.Errorf("created %+v", x)
	}
	if !strings.Contains(f.logText(), `"event":"registered","user":"erin.m","ip":"192.0.2.10","pending":false,"roles":"reader,wiki"`) {
		t.Errorf("no audit event:\n%s", f.logText())
	}
	mails := mail.to("erin@example.com")
	if len(mails) != 1 || !strings.Contains(mails[0].Subject, "Confirm your email address") {
		t.Fatalf("mails to erin: %+v", mails)
	}
	path, token := linkIn(t, mails[0])
	if path != "/.gatehouse/verify" {
		t.Fatalf("link to %s", path)
	}
	// A GET (a mail scanner, a preview) changes nothing, and without the
	// account's session the page only offers to sign in: whoever merely
	// received the mail cannot attach the address to this account.
	signInLink := `href="/.gatehouse/login?rd=` + url.QueryEscape(path+"?token="+token)
	for range 2 {
		page := wantPage(t, b.do("GET", path+"?token="+token, nil), http.StatusOK, "Sign in to confirm", "erin.m")
		if !strings.Contains(page, strings.ReplaceAll(signInLink, "&", "&amp;")) || strings.Contains(page, `action="/.gatehouse/verify"`) {
			t.Errorf("anonymous confirm page:\n%s", page)
		}
	}
	form := url.Values{"token": {token}, "csrf": {b.token("/.gatehouse/login")}}
	wantPage(t, b.do("POST", "/.gatehouse/verify", form), http.StatusForbidden, "Sign in to confirm")
	bob := f.browser(t)
	if resp := bob.signIn("bob", "bob-password", "/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("bob signs in: %d", resp.StatusCode)
	}
	wantPage(t, bob.do("GET", path+"?token="+token, nil), http.StatusOK, "You are signed in as <strong>bob</strong>")
	wantPage(t, bob.do("POST", "/.gatehouse/verify", url.Values{"token": {token}, "csrf": {bob.token("/.gatehouse/login")}}), http.StatusForbidden)
	if x, _ := f.db.User("erin.m"); x.EmailVerified {
		t.Fatal("the address was verified without erin's session")
	}
	// Signed in as erin.m: the button, and it works once.
	if resp := b.signIn("erin.m", "tulip-bicycle-42", path+"?token="+token); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != path+"?token="+token {
		t.Fatalf("sign-in back to the link: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	wantPage(t, b.do("GET", path+"?token="+token, nil), http.StatusOK, `action="/.gatehouse/verify"`, `name="token" value="`+token+`"`, "Confirm email address</button>")
	form = url.Values{"token": {token}, "csrf": {b.token("/.gatehouse/login")}}
	wantPage(t, b.do("POST", "/.gatehouse/verify", form), http.StatusOK, "Email address confirmed")
	if x, _ := f.db.User("erin.m"); !x.EmailVerified {
		t.Error("the address is not verified")
	}
	if !strings.Contains(f.logText(), `"event":"email_verified","user":"erin.m"`) {
		t.Error("no email_verified audit event")
	}
	wantPage(t, b.do("POST", "/.gatehouse/verify", form), http.StatusBadRequest, msgLinkInvalid)
	wantPage(t, b.do("GET", path+"?token="+token, nil), http.StatusBadRequest, msgLinkInvalid)

	if resp := f.browser(t).signIn("erin@example.com", "tulip-bicycle-42", "/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the new account cannot sign in: %d", resp.StatusCode)
	}
}

// TestRegistrationDoesNotRevealAccounts pins down account enumeration: a
// taken username or address gets the very page a new account gets, and
// the answer goes to the mailbox instead.
func TestRegistrationDoesNotRevealAccounts(t *testing.T) {
	for _, withMail := range []bool{true, false} {
		name := "without mail"
		if withMail {
			name = "with mail"
		}
		t.Run(name, func(t *testing.T) {
			mail := &outbox{}
			var f *fixture
			if withMail {
				f = newMailFixture(t, mail, registration)
			} else {
				f = newFixture(t, registration, func(c *Config) { c.Limits.PerIP = limiter.Rate{Period: time.Minute, Limit: 1000} })
			}
			answer := func(username, email string) (int, string) {
				resp := f.browser(t).register(username, email, "", "tulip-bicycle-42", "tulip-bicycle-42")
				return resp.StatusCode, tokenRE.ReplaceAllString(body(resp), "")
			}
			status, want := answer("newcomer", "newcomer@example.com")
			if _, err := f.db.User("newcomer"); err != nil {
				t.Fatalf("the new account was not created: %v", err)
			}
			for _, tc := range []struct{ name, username, email string }{
				{"taken username", "BOB", "fresh@example.com"},
				{"taken email", "fresh", "Bob@Example.com"},
				{"both taken", "bob", "alice@example.com"},
			} {
				gotStatus, got := answer(tc.username, tc.email)
				if gotStatus != status || got != want {
					t.Errorf("%s: %d\n%s\nwant %d\n%s", tc.name, gotStatus, got, status, want)
				}
			}
			if _, err := f.db.User("fresh"); !errors.Is(err, store.ErrNotFound) {
				t.Error("an account was created with a taken address")
			}
			if x, _ := f.db.User("bob"); x.Email != "bob@example.com" || x.DisplayName != "" {
				t.Errorf("bob changed: %+v", x)
			}
			if !strings.Contains(f.logText(), `"event":"registration_duplicate","user":"bob"`) {
				t.Error("no registration_duplicate audit event")
			}
			if !withMail {
				return
			}
			bob := mail.to("bob@example.com")
			if len(bob) != 1 || !strings.Contains(bob[0].Text, "An account with this address already exists") ||
				!strings.Contains(bob[0].Text, "https://app.example.com/.gatehouse/reset") {
				t.Errorf("the owner of the taken address was not told: %+v", bob)
			}
			fresh := mail.to("fresh@example.com")
			if len(fresh) != 1 || !strings.Contains(fresh[0].Text, "the username bob") ||
				!strings.Contains(fresh[0].Text, "https://app.example.com/.gatehouse/register") {
				t.Errorf("the new address was not told the username is taken: %+v", fresh)
			}
			if len(bob) == 1 && !strings.Contains(bob[0].HTML, ">Choose a new password</a>") {
				t.Errorf("the HTML of the notice lacks its button:\n%s", bob[0].HTML)
			}
			if len(fresh) == 1 && !strings.Contains(fresh[0].HTML, "<strong>bob</strong>") {
				t.Errorf("the HTML of the notice lacks the username:\n%s", fresh[0].HTML)
			}
			if alice := mail.to("alice@example.com"); len(alice) != 1 {
				t.Errorf("mails to alice: %d, want 1", len(alice))
			}
		})
	}
}

// TestRegistrationWithApproval: the account waits, unable to sign in,
// until an admin approves it.
func TestRegistrationWithApproval(t *testing.T) {
	for _, withMail := range []bool{false, true} {
		var f *fixture
		mail := &outbox{}
		approval := func(c *Config) { c.RegistrationApproval = true }
		if withMail {
			f = newMailFixture(t, mail, registration, approval)
		} else {
			f = newFixture(t, registration, approval)
		}
		want := msgRegisteredApproval
		if withMail {
			want = msgRegisteredMailApproval
		}
		wantPage(t, f.browser(t).register("frank", "frank@example.com", "", "tulip-bicycle-42", "tulip-bicycle-42"),
			http.StatusOK, want)
		if x, err := f.db.User("frank"); err != nil || !x.Pending {
			t.Fatalf("frank: %+v, %v; want pending", x, err)
		}
		if resp := f.browser(t).signIn("frank", "tulip-bicycle-42", "/"); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("a pending account signed in: %d", resp.StatusCode)
		}
		alice := f.adminSignIn(t, "alice")
		wantAdminRedirect(t, alice.adminPost("/.gatehouse/admin/users/frank/approve", nil), http.StatusSeeOther, "/.gatehouse/admin/users/frank?done=approved")
		if resp := f.browser(t).signIn("frank", "tulip-bicycle-42", "/"); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("the approved account cannot sign in: %d", resp.StatusCode)
		}
	}
}

func TestRegistrationRefusesBadInput(t *testing.T) {
	f := newMailFixture(t, &outbox{}, registration)
	good := url.Values{"username": {"grace"}, "email": {"grace@example.com"}, "display_name": {"Grace"},
		"password": {"tulip-bicycle-42"}, "confirm": {"tulip-bicycle-42"}}
	tests := []struct {
		name   string
		key    string
		value  string
		status int
		msg    string
	}{
		{"short username", "username", "gr", 400, msgRegisterBadUsername},
		{"long username", "username", strings.Repeat("g", 65), 400, msgRegisterBadUsername},
		{"username with a space", "username", "gr ace", 400, msgRegisterBadUsername},
		{"username with an @", "username", "grace@example.com", 400, msgRegisterBadUsername},
		{"empty username", "username", "", 400, msgRegisterBadUsername},
		{"email without @", "email", "grace.example.com", 400, msgRegisterBadEmail},
		{"email with two @", "email", "grace@evil@example.com", 400, msgRegisterBadEmail},
		{"email with CR/LF", "email", "grace@example.com\r\nBcc: victim@example.net", 400, msgRegisterBadEmail},
		{"email too long", "email", strings.Repeat("g", 250) + "@example.com", 400, msgRegisterBadEmail},
		{"email with a lookalike letter", "email", "gr\u0430ce@example.com", 400, msgRegisterBadEmail},
		{"email with a unicode domain", "email", "grace@ex\u00e4mple.com", 400, msgRegisterBadEmail},
		{"name with a newline", "display_name", "Grace\nHopper", 400, msgRegisterBadDisplayName},
		{"name too long", "display_name", strings.Repeat("g", 129), 400, msgRegisterBadDisplayName},
		{"short password", "password", "tulip-4", 400, "Use at least 8 characters."},
		{"common password", "password", "password123", 400, string(msgPasswordCommon)},
		{"password is the username", "password", "GRACE", 400, "Use at least 8 characters."},
		{"password too long", "password", strings.Repeat("x", 257), 400, string(msgPasswordTooLong)},
		{"confirmation differs", "confirm", "tulip-bicycle-43", 400, string(msgPasswordMismatch)},
		{"huge body", "display_name", strings.Repeat("x", 20000), 413, "Too much data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := f.browser(t)
			form := url.Values{"csrf": {b.token("/.gatehouse/login")}}
			for k, v := range good {
				form[k] = v
			}
			form.Set(tc.key, tc.value)
			if tc.key == "password" {
				form.Set("confirm", tc.value)
			}
			page := wantPage(t, b.do("POST", "/.gatehouse/register", form), tc.status, htmlEscape(tc.msg))
			if tc.status == 400 && !strings.Contains(page, `aria-invalid="true"`) {
				t.Error("no input is marked invalid")
			}
			if strings.Contains(page, "tulip-bicycle") || strings.Contains(page, "<script") {
				t.Error("the password or unescaped input was echoed")
			}
		})
	}
	name := f.browser(t).register("helen", "helen@example.com", "", "helen-example", "helen-example")
	wantPage(t, name, http.StatusOK) // a password near the name is allowed...
	same := f.browser(t).register("ivan.petrov", "ivan@example.com", "", "ivan.petrov", "ivan.petrov")
	wantPage(t, same, http.StatusBadRequest, htmlEscape(string(msgPasswordIsName))) // ...the name itself is not
	if _, err := f.db.User("grace"); !errors.Is(err, store.ErrNotFound) {
		t.Error("a refused form created an account")
	}
	if strings.Contains(f.logText(), "tulip-bicycle") {
		t.Error("a password reached the log")
	}
}

// TestRegistrationRefusesForgedPosts: a cross-site page cannot create
// accounts in a visitor's name (login CSRF), request resets or set a
// password with a link it learnt.
func TestRegistrationRefusesForgedPosts(t *testing.T) {
	mail := &outbox{}
	f := newMailFixture(t, mail, registration)
	b := f.browser(t)
	resp := b.register("mallory", "mallory@example.com", "", "tulip-bicycle-42", "tulip-bicycle-42", "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")
	wantPage(t, resp, http.StatusForbidden)
	resp = b.do("POST", "/.gatehouse/register", url.Values{"username": {"mallory"}, "email": {"mallory@example.com"},
		"password": {"tulip-bicycle-42"}, "confirm": {"tulip-bicycle-42"}, "csrf": {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}})
	wantPage(t, resp, http.StatusForbidden, msgFormExpired, `value="mallory"`)
	if _, err := f.db.User("mallory"); !errors.Is(err, store.ErrNotFound) {
		t.Error("a forged post created an account")
	}
	token := b.token("/.gatehouse/login")
	cross := []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}
	wantPage(t, b.do("POST", "/.gatehouse/reset", url.Values{"login": {"bob"}, "csrf": {token}}, cross...), http.StatusForbidden)
	wantPage(t, b.do("POST", "/.gatehouse/reset", url.Values{"login": {"bob"}}), http.StatusForbidden, msgFormExpired)
	f.ui.background.Wait()
	if n := len(mail.to("bob@example.com")); n != 0 {
		t.Errorf("a forged reset request sent %d mails", n)
	}
	reset, err := f.db.CreateToken("bob", store.PurposeReset, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"token": {reset}, "password": {"tulip-bicycle-42"}, "confirm": {"tulip-bicycle-42"}, "csrf": {token}}
	wantPage(t, b.do("POST", "/.gatehouse/reset/confirm", form, cross...), http.StatusForbidden)
	form.Del("csrf")
	wantPage(t, b.do("POST", "/.gatehouse/reset/confirm", form), http.StatusForbidden, msgFormExpired)
	if resp := f.browser(t).signIn("bob", "bob-password", "/"); resp.StatusCode != http.StatusSeeOther {
		t.Error("a forged post reset bob's password")
	}
	wantPage(t, b.do("GET", "/.gatehouse/reset/confirm?token="+reset, nil), http.StatusOK) // and the link still works
}

func TestRegistrationIsRateLimited(t *testing.T) {
	f := newFixture(t, registration, func(c *Config) { c.Limits.PerIP = limiter.Rate{Period: time.Minute, Limit: 2} })
	b := f.browser(t)
	for i, name := range []string{"jack", "kate"} {
		if resp := b.register(name, name+"@example.com", "", "tulip-bicycle-42", "tulip-bicycle-42"); resp.StatusCode != http.StatusOK {
			t.Fatalf("registration %d: %d", i, resp.StatusCode)
		}
	}
	resp := b.register("liam", "liam@example.com", "", "tulip-bicycle-42", "tulip-bicycle-42")
	wantPage(t, resp, http.StatusTooManyRequests, "Too many attempts")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	if _, err := f.db.User("liam"); !errors.Is(err, store.ErrNotFound) {
		t.Error("a limited registration created an account")
	}
}

// TestRegistrationSurvivesAFailingMailer: the account is kept and the page
// says the mail did not go out; the account page offers a new link.
func TestRegistrationSurvivesAFailingMailer(t *testing.T) {
	mail := &outbox{fail: errors.New("smtp: 451 try again later")}
	f := newMailFixture(t, mail, registration)
	wantPage(t, f.browser(t).register("mia", "mia@example.com", "", "tulip-bicycle-42", "tulip-bicycle-42"), http.StatusOK,
		"Account created", msgRegisteredMailFailed)
	if _, err := f.db.User("mia"); err != nil {
		t.Fatalf("the account was lost: %v", err)
	}
	if !strings.Contains(f.logText(), "the confirmation mail was not sent; the account exists") || !strings.Contains(f.logText(), "451 try again later") {
		t.Errorf("no clear log line:\n%s", f.logText())
	}

	b := f.browser(t)
	if resp := b.signIn("mia", "tulip-bicycle-42", "/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	wantPage(t, b.do("GET", "/.gatehouse/account", nil), http.StatusOK, `action="/.gatehouse/account/verify"`, "not confirmed")
	resend := func() *http.Response {
		return b.do("POST", "/.gatehouse/account/verify", url.Values{"csrf": {b.token("/.gatehouse/login")}})
	}
	wantPage(t, resend(), http.StatusServiceUnavailable, msgMailFailed)
	mail.setFail(nil)
	resp := resend()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/.gatehouse/account?done=verify" {
		t.Fatalf("resend: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	wantPage(t, b.do("GET", "/.gatehouse/account?done=verify", nil), http.StatusOK, "We sent a new confirmation link")
	mails := mail.to("mia@example.com")
	if len(mails) != 1 {
		t.Fatalf("mails: %d", len(mails))
	}
	_, token := linkIn(t, mails[0])
	wantPage(t, b.do("POST", "/.gatehouse/verify", url.Values{"token": {token}, "csrf": {b.token("/.gatehouse/login")}}), http.StatusOK)
	if page := body(b.do("GET", "/.gatehouse/account", nil)); strings.Contains(page, "/.gatehouse/account/verify") {
		t.Error("the account page still offers a confirmation link")
	}
}

// TestRegistrationPagesAreAccessible: labels, CSRF tokens, no inline
// script or style, the common layout.
func TestRegistrationPagesAreAccessible(t *testing.T) {
	mail := &outbox{}
	f := newMailFixture(t, mail, registration)
	f.browser(t).register("nora", "nora@example.com", "", "tulip-bicycle-42", "tulip-bicycle-42")
	b := f.browser(t)
	b.do("POST", "/.gatehouse/reset", url.Values{"login": {"bob"}, "csrf": {b.token("/.gatehouse/login")}})
	f.ui.background.Wait()
	_, verify := linkIn(t, mail.to("nora@example.com")[0])
	_, reset := linkIn(t, mail.to("bob@example.com")[0])
	// The confirm button is for the account's own session.
	if resp := b.signIn("nora", "tulip-bicycle-42", "/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("nora signs in: %d", resp.StatusCode)
	}
	inputs := regexp.MustCompile(`<input id="([^"]+)"`)
	forms := regexp.MustCompile(`(?s)<form method="post".*?</form>`)
	for _, target := range []string{"/.gatehouse/register", "/.gatehouse/reset", "/.gatehouse/verify?token=" + verify, "/.gatehouse/reset/confirm?token=" + reset} {
		resp := b.do("GET", target, nil)
		page := wantPage(t, resp, http.StatusOK, `<html lang="en">`, `href="/.gatehouse/static/style.css"`, `<meta name="viewport"`)
		if got := resp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(got, "default-src 'self'") {
			t.Errorf("%s: CSP %q", target, got)
		}
		if strings.Contains(page, "<script") || strings.Contains(page, "style=") || strings.Contains(page, "<style") {
			t.Errorf("%s has inline script or style", target)
		}
		for _, m := range inputs.FindAllStringSubmatch(page, -1) {
			if !strings.Contains(page, `<label for="`+m[1]+`"`) {
				t.Errorf("%s: input %s has no label", target, m[1])
			}
		}
		if len(forms.FindAllString(page, -1)) == 0 {
			t.Errorf("%s: no form", target)
		}
		for _, form := range forms.FindAllString(page, -1) {
			if !tokenRE.MatchString(form) {
				t.Errorf("%s: a form without a CSRF token:\n%s", target, form)
			}
		}
	}
}

func TestNewChecksRegistrationSettings(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		cfg  func(*Config)
	}{
		{"admin as a default role", func(c *Config) { c.DefaultRoles = []string{"reader", "admin"} }},
		{"a default role with a comma", func(c *Config) { c.DefaultRoles = []string{"a,b"} }},
		{"negative token lifetime", func(c *Config) { c.TokenTTL = -time.Hour }},
		{"negative invitation lifetime", func(c *Config) { c.InviteTTL = -time.Hour }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Secrets: [][]byte{[]byte(secret)}}
			tc.cfg(&cfg)
			if _, err := New(cfg, Deps{DB: f.db, Log: slog.New(slog.DiscardHandler)}); err == nil {
				t.Error("New accepted it")
			}
		})
	}
	ui, err := New(Config{Secrets: [][]byte{[]byte(secret)}}, Deps{DB: f.db, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if ui.cfg.TokenTTL != time.Hour || ui.cfg.InviteTTL != 72*time.Hour || ui.cfg.Registration || ui.mailer != nil {
		t.Errorf("defaults: TokenTTL %v, InviteTTL %v, Registration %v, mailer %v", ui.cfg.TokenTTL, ui.cfg.InviteTTL, ui.cfg.Registration, ui.mailer)
	}
}

// TestRegistrationMailsToOneAddressAreLimited pins down mail bombing
// through the registration form: every well-formed registration mails its
// address (a confirmation, or "you already have an account"), so without
// a limit per address one client could flood any mailbox with mails from
// the gateway at its whole per-address sign-in budget. The limit counts
// the canonical address whether or not it has an account, so its 429
// says nothing about which addresses are registered.
func TestRegistrationMailsToOneAddressAreLimited(t *testing.T) {
	mail := &outbox{}
	f := newMailFixture(t, mail, registration) // 1000 posts a minute from one client address
	for _, addr := range []string{"bob@example.com", "newcomer@example.com"} {
		var last *http.Response
		for i := range 20 {
			last = f.browser(t).register(fmt.Sprintf("x%d-%s", i, addr[:3]), strings.ToUpper(addr), "", "tulip-bicycle-42", "tulip-bicycle-42")
			if last.StatusCode != http.StatusOK {
				break
			}
		}
		if n := len(mail.to(addr)); n > 5 {
			t.Errorf("%s: %d mails from 20 registrations, want at most the per-account limit of 5", addr, n)
		}
		wantPage(t, last, http.StatusTooManyRequests, "Too many attempts")
		if last.Header.Get("Retry-After") == "" {
			t.Errorf("%s: 429 without Retry-After", addr)
		}
	}
}

// TestOneMailBudgetPerMailbox: reset links and "this address is taken"
// notices draw on one budget per mailbox. Asking through several forms
// gets no more mail into it than asking through one. The reset form stays
// silent about the budget.
func TestOneMailBudgetPerMailbox(t *testing.T) {
	mail := &outbox{}
	f := newMailFixture(t, mail, registration)
	for range 3 {
		wantPage(t, f.requestReset(t, f.browser(t), "bob"), http.StatusOK, "Check your email")
	}
	for i := range 4 { // well under the registration form's own limit
		resp := f.browser(t).register(fmt.Sprintf("mallory%d", i), "Bob@Example.com", "", "tulip-bicycle-42", "tulip-bicycle-42")
		wantPage(t, resp, http.StatusOK, "Check your email")
	}
	wantPage(t, f.requestReset(t, f.browser(t), "bob@example.com"), http.StatusOK, "Check your email")
	if n := len(mail.to("bob@example.com")); n != 5 {
		t.Errorf("bob's mailbox got %d mails from 4 reset requests and 4 registrations, want the budget of 5", n)
	}
}

// TestMailsToAnUnconfirmedAddressCarryNoChosenText pins down two abuses of
// registering with someone else's address. Phishing through the gateway's
// own mail: whatever the registrant typed as their name must not reach an
// address nobody has confirmed, in any mail (confirmation, reset, "you
// already have an account"). A confused deputy: the confirmation mail and
// page must say which account the address would be confirmed for, so its
// owner can tell it is not theirs; a confirmed address goes upstream as
// Remote-Email, which apps may trust as identity.
func TestMailsToAnUnconfirmedAddressCarryNoChosenText(t *testing.T) {
	mail := &outbox{}
	f := newMailFixture(t, mail, registration)
	lure := "IT desk: your mailbox is full, sign in at mail-help.example"
	wantPage(t, f.browser(t).register("mallory", "victim@example.com", lure, "tulip-bicycle-42", "tulip-bicycle-42"), http.StatusOK)
	f.requestReset(t, f.browser(t), "mallory")
	wantPage(t, f.browser(t).register("mallory2", "victim@example.com", lure, "tulip-bicycle-42", "tulip-bicycle-42"), http.StatusOK)
	mails := mail.to("victim@example.com")
	if len(mails) != 3 {
		t.Fatalf("mails to the victim: %d, want 3 (confirmation, reset, exists)", len(mails))
	}
	for _, m := range mails {
		if strings.Contains(m.Text, "mail-help") || strings.Contains(m.HTML, "mail-help") {
			t.Errorf("%q carries the registrant's text:\n%s", m.Subject, m.Text)
		}
	}
	verify := mails[0]
	if !strings.Contains(verify.Text, "mallory") || !strings.Contains(verify.HTML, "<strong>mallory</strong>") {
		t.Errorf("the confirmation mail does not name the account:\n%s", verify.Text)
	}
	path, token := linkIn(t, verify)
	wantPage(t, f.browser(t).do("GET", path+"?token="+token, nil), http.StatusOK, "<strong>mallory</strong>")

	// A confirmed address is greeted by its name, as before.
	if _, err := f.db.UpdateUser("bob", func(x *store.User) error { x.DisplayName, x.EmailVerified = "Bob B", true; return nil }); err != nil {
		t.Fatal(err)
	}
	f.requestReset(t, f.browser(t), "bob")
	if got := mail.to("bob@example.com"); len(got) != 1 || !strings.Contains(got[0].Text, "Hello Bob B,") {
		t.Errorf("reset mail to a confirmed address: %+v", got)
	}
}

// TestDisplayNamesHoldNoInvisibleLayout pins down display names that
// change how the text around them reads: a line or paragraph separator
// (shown as a new line by mail clients and some apps, like the CR/LF that
// is already refused) or a bidirectional override or isolate, which can
// show "‮nimda" as "admin" in the console and upstream in Remote-Name.
// Both the registration form and the admin console refuse them.
func TestDisplayNamesHoldNoInvisibleLayout(t *testing.T) {
	f := newMailFixture(t, &outbox{}, registration)
	alice := f.adminSignIn(t, "alice")
	for i, name := range []string{"Mallory\u2028Remote-User: alice", "Mallory\u2029x", "\u202enimda", "a\u2066b\u2069", "x\u200fy"} {
		wantPage(t, f.browser(t).register(fmt.Sprintf("mal%d", i), fmt.Sprintf("mal%d@example.com", i), name, "tulip-bicycle-42", "tulip-bicycle-42"),
			http.StatusBadRequest, msgRegisterBadDisplayName)
		wantPage(t, alice.adminPost("/.gatehouse/admin/users/bob", url.Values{"email": {"bob@example.com"}, "display_name": {name}}),
			http.StatusBadRequest, msgAdminBadDisplayName)
	}
	// Letters of every script, and the joiners some of them need, still work.
	for i, name := range []string{"Zoë Ångström", "محمد علي", "श्री\u200dराम", "👩\u200d💻 Dev"} {
		wantPage(t, f.browser(t).register(fmt.Sprintf("ok%d", i), fmt.Sprintf("ok%d@example.com", i), name, "tulip-bicycle-42", "tulip-bicycle-42"),
			http.StatusOK)
		if x, err := f.db.User(fmt.Sprintf("ok%d", i)); err != nil || x.DisplayName != name {
			t.Errorf("%q: %+v, %v", name, x, err)
		}
	}
}

// TestConfirmationLinksOnlyForAccountsThatMayUseThem: a confirmation link
// of a disabled, pending or deleted account is a dead link, as reset and
// invitation links are.
func TestConfirmationLinksOnlyForAccountsThatMayUseThem(t *testing.T) {
	f := newMailFixture(t, &outbox{})
	for _, name := range []string{"dora", "bob", "ghost"} { // dora is disabled
		if name == "ghost" {
			if err := f.db.CreateUser(store.User{Username: "ghost", Email: "ghost@example.com"}); err != nil {
				t.Fatal(err)
			}
		}
		token, err := f.db.CreateToken(name, store.PurposeVerify, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		switch name {
		case "bob":
			if _, err := f.db.UpdateUser("bob", func(x *store.User) error { x.Pending = true; return nil }); err != nil {
				t.Fatal(err)
			}
		case "ghost":
			if err := f.db.DeleteUser("ghost"); err != nil {
				t.Fatal(err)
			}
		}
		b := f.browser(t)
		wantPage(t, b.do("GET", "/.gatehouse/verify?token="+token, nil), http.StatusBadRequest, msgLinkInvalid)
		wantPage(t, b.do("POST", "/.gatehouse/verify", url.Values{"token": {token}, "csrf": {b.token("/.gatehouse/login")}}), http.StatusBadRequest, msgLinkInvalid)
	}
}
