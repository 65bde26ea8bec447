package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browserSignIn signs in through the real sign-in page.
func browserSignIn(t *testing.T, ctx context.Context, base, user, password string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/.gatehouse/login?rd=%2F.gatehouse%2Faccount"),
		chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), user),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), password),
		chromedp.Submit(chromedp.CSS(`input[name=password]`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/.gatehouse/account/password"]`)),
	); err != nil {
		t.Fatalf("sign in as %s: %v", user, err)
	}
}

// pageText is the visible text of the page's main content.
func pageText(t *testing.T, ctx context.Context) string {
	t.Helper()
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`body`)))
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// fitsPhone shows the page at 375 px, saves a screenshot and checks
// nothing sticks out sideways; then it goes back to desktop width.
func fitsPhone(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(375, 740)); err != nil {
		t.Fatal(err)
	}
	width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if width > 375 {
		t.Errorf("%s is %d px wide on a 375-px screen", name, width)
	}
	screenshot(t, ctx, name+"-phone")
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatal(err)
	}
}

// submit presses the submit button of the form whose action ends in
// action, waits until the browser shows the page that follows (not the
// one it left, which may hold sel too), and then for sel on it.
func submit(t *testing.T, ctx context.Context, action, sel string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Evaluate[chromedp.Void](`window.__leaving = true`),
		chromedp.Click(chromedp.CSS(`form[action$="`+action+`"] button[type=submit]`)),
	); err != nil {
		t.Fatalf("submit %s: %v", action, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Errors here mean the old page is going away: try again.
		arrived, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__leaving === undefined && document.readyState === "complete"`))
		if err == nil && arrived {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("submit %s: the next page never came (%v)", action, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		t.Fatalf("submit %s: %v", action, err)
	}
}

// TestBrowserAdminConsole: an admin creates, edits, disables and deletes a
// user through the console, and each change holds for that user at once.
func TestBrowserAdminConsole(t *testing.T) {
	t.Setenv("GATEHOUSE_ADMIN_PASSWORD", "browser-admin-pass-1")
	g := startGateway(t, writeE2EConfig(t, t.TempDir(), ""))
	ctx := browser(t)
	browserSignIn(t, ctx, g.https, "admin", "browser-admin-pass-1")

	if err := chromedp.Do(ctx,
		chromedp.Navigate(g.https+"/.gatehouse/admin"),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/.gatehouse/admin/new"]`)),
	); err != nil {
		t.Fatalf("open the console: %v", err)
	}
	screenshot(t, ctx, "admin-users")
	fitsPhone(t, ctx, "admin-users")

	// Create carol with a password.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`a[href="/.gatehouse/admin/new"]`)),
		chromedp.WaitVisible(chromedp.CSS(`input#username`)),
		chromedp.SendKeys(chromedp.CSS(`input#username`), "Carol"),
		chromedp.SendKeys(chromedp.CSS(`input#email`), "carol@example.com"),
		chromedp.SendKeys(chromedp.CSS(`input#display_name`), "Carol <b>Danvers</b>"),
		chromedp.SendKeys(chromedp.CSS(`input#roles`), "staff"),
		chromedp.SendKeys(chromedp.CSS(`input#password`), "carol-first-password"),
		chromedp.SendKeys(chromedp.CSS(`input#confirm`), "carol-first-password"),
	); err != nil {
		t.Fatalf("fill in the new user: %v", err)
	}
	screenshot(t, ctx, "admin-new")
	fitsPhone(t, ctx, "admin-new")
	submit(t, ctx, "/.gatehouse/admin/new", `form[action$="/disable"]`)
	name, _ := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(`input#display_name`)))
	email, _ := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(`input#email`)))
	if name != "Carol <b>Danvers</b>" || email != "carol@example.com" {
		t.Errorf("the new user's page shows %q %q, not what was entered", name, email)
	}

	// Carol signs in elsewhere and reaches the app with her role.
	carol := g.client()
	if resp, _ := g.signIn(t, carol, "carol", "carol-first-password", "/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("carol cannot sign in: %d", resp.StatusCode)
	}
	if _, body := do(t, carol, "GET", g.https+"/echo", nil); !strings.Contains(body, "staff") {
		t.Errorf("carol's roles upstream lack staff:\n%s", body)
	}

	// Edit her roles: her next request carries the new ones.
	if err := chromedp.Do(ctx,
		chromedp.Clear(chromedp.CSS(`input#roles`)),
		chromedp.SendKeys(chromedp.CSS(`input#roles`), "staff editors"),
	); err != nil {
		t.Fatal(err)
	}
	submit(t, ctx, "/carol", `[role=status]`)
	screenshot(t, ctx, "admin-user-edited")
	fitsPhone(t, ctx, "admin-user")
	if _, body := do(t, carol, "GET", g.https+"/echo", nil); !strings.Contains(body, "editors") {
		t.Errorf("carol's next request does not carry the new role:\n%s", body)
	}

	// Disable her: her live session stops working at once.
	submit(t, ctx, "/carol/disable", `form[action$="/enable"]`)
	if resp, _ := do(t, carol, "GET", g.https+"/echo", nil, "Accept", "text/html"); resp.StatusCode != http.StatusFound {
		t.Errorf("a disabled user's session still works: %d", resp.StatusCode)
	}
	if text := pageText(t, ctx); !strings.Contains(strings.ToLower(text), "disabled") {
		t.Errorf("the page does not say carol is disabled:\n%s", text)
	}

	// Delete her, through the confirmation page.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`a[href$="/carol/delete"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/carol/delete"] button`)),
	); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "admin-delete-confirm")
	submit(t, ctx, "/carol/delete", `a[href="/.gatehouse/admin/new"]`)
	if text := pageText(t, ctx); strings.Contains(text, "carol@example.com") {
		t.Errorf("carol is still listed after deletion:\n%s", text)
	}
	if resp, _ := g.signIn(t, g.client(), "carol", "carol-first-password", "/"); resp.StatusCode == http.StatusSeeOther {
		t.Error("a deleted user can sign in")
	}
}

var mailLink = regexp.MustCompile(`https://localhost:\d+/\.gatehouse/[a-z/]+\?token=[A-Za-z0-9_=-]+`)

// linkIn returns the first gateway link in a mail, decoded from the
// quoted-printable the text part may use.
func linkIn(t *testing.T, raw []byte) string {
	t.Helper()
	text := strings.ReplaceAll(string(raw), "=\r\n", "")
	text = strings.ReplaceAll(text, "=3D", "=")
	link := mailLink.FindString(text)
	if link == "" {
		t.Fatalf("no link in the mail:\n%s", raw)
	}
	if _, err := url.Parse(link); err != nil {
		t.Fatal(err)
	}
	return link
}

// waitMail waits for the n-th message the SMTP server received.
func waitMail(t *testing.T, be *smtpBackend, n int) receivedMail {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if got := be.received(); len(got) >= n {
			return got[n-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("mail %d never arrived", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mailGateway starts a gateway with self-registration on and mail going to
// a real SMTP server in the test.
func mailGateway(t *testing.T) (*testGateway, *smtpBackend) {
	t.Helper()
	be := &smtpBackend{}
	port := startSMTP(t, be, serverPlain, tls.Certificate{})
	dir := t.TempDir()
	extra := fmt.Sprintf(`login: { registration: true, default_roles: [staff] }
mail:
  mode: smtp
  from: "Gatehouse <gatehouse@example.com>"
  smtp: { host: 127.0.0.1, port: %d, tls: none }
apps:
  - host: localhost
    upstream: echo
`+e2eRules, port)
	return startGateway(t, writeE2EConfig(t, dir, extra)), be
}

// sessionRows counts the sessions listed on the account page.
func sessionRows(t *testing.T, ctx context.Context) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('form[action="/.gatehouse/account/sessions/end"]').length`))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBrowserSelfService walks what a user does alone: sign up, follow
// the link in the mail, sign in, confirm the address, change the password,
// see and end sessions, sign out, and reset a forgotten password by mail.
func TestBrowserSelfService(t *testing.T) {
	g, mails := mailGateway(t)
	ctx := browser(t)

	// Sign up from the sign-in page.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(g.https+"/.gatehouse/login"),
		chromedp.Click(chromedp.CSS(`a[href="/.gatehouse/register"]`)),
		chromedp.WaitVisible(chromedp.CSS(`input#username`)),
		chromedp.SendKeys(chromedp.CSS(`input#username`), "Dave"),
		chromedp.SendKeys(chromedp.CSS(`input#email`), "dave@example.com"),
		chromedp.SendKeys(chromedp.CSS(`input#display_name`), "Dave Bowman"),
		chromedp.SendKeys(chromedp.CSS(`input#password`), "open the pod bay doors"),
		chromedp.SendKeys(chromedp.CSS(`input#confirm`), "open the pod bay doors"),
	); err != nil {
		t.Fatalf("fill in the sign-up form: %v", err)
	}
	screenshot(t, ctx, "register")
	fitsPhone(t, ctx, "register")
	submit(t, ctx, "/.gatehouse/register", `h1`)
	screenshot(t, ctx, "register-done")

	// The link in the mail asks for the account's sign-in, then confirms
	// the address with one more click.
	verify := linkIn(t, waitMail(t, mails, 1).data)
	if !strings.Contains(verify, "/.gatehouse/verify?token=") {
		t.Fatalf("first mail links to %s", verify)
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(verify),
		chromedp.WaitVisible(chromedp.CSS(`a[href^="/.gatehouse/login?rd="]`)),
	); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "verify-sign-in-first")
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`a[href^="/.gatehouse/login?rd="]`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "dave@example.com"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "open the pod bay doors"),
		chromedp.Submit(chromedp.CSS(`input[name=password]`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/.gatehouse/verify"] button`)),
	); err != nil {
		t.Fatalf("sign in to confirm: %v", err)
	}
	screenshot(t, ctx, "verify-confirm")
	fitsPhone(t, ctx, "verify-confirm")
	submit(t, ctx, "/.gatehouse/verify", `h1`)
	screenshot(t, ctx, "verify-done")
	if text := pageText(t, ctx); !strings.Contains(strings.ToLower(text), "confirmed") {
		t.Errorf("after confirming:\n%s", text)
	}

	// The account page; the app sees the confirmed address and the default role.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(g.https+"/.gatehouse/account"),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/.gatehouse/account/password"]`)),
	); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "account")
	fitsPhone(t, ctx, "account")
	if err := chromedp.Do(ctx,
		chromedp.Navigate(g.https+"/whoami"),
		chromedp.WaitVisible(chromedp.CSS(`table`)),
	); err != nil {
		t.Fatal(err)
	}
	if text := pageText(t, ctx); !strings.Contains(text, "dave@example.com") || !strings.Contains(text, "staff") {
		t.Errorf("the app does not see dave's confirmed address and role:\n%s", text)
	}

	// Change the password.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(g.https+"/.gatehouse/account"),
		chromedp.WaitVisible(chromedp.CSS(`input#current`)),
		chromedp.SendKeys(chromedp.CSS(`input#current`), "open the pod bay doors"),
		chromedp.SendKeys(chromedp.CSS(`input#new`), "daisy, daisy, give me"),
		chromedp.SendKeys(chromedp.CSS(`input#confirm`), "daisy, daisy, give me"),
	); err != nil {
		t.Fatal(err)
	}
	submit(t, ctx, "/.gatehouse/account/password", `[role=status]`)
	screenshot(t, ctx, "account-password-changed")

	// A second device signs in; the list shows both, and ending the others
	// signs that device out.
	other := g.client()
	if resp, _ := g.signIn(t, other, "dave", "daisy, daisy, give me", "/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in with the new password: %d", resp.StatusCode)
	}
	if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`input#current`))); err != nil {
		t.Fatal(err)
	}
	if n := sessionRows(t, ctx); n != 2 {
		t.Errorf("%d sessions listed, want 2", n)
	}
	screenshot(t, ctx, "account-sessions")
	submit(t, ctx, "/.gatehouse/account/sessions/end-others", `[role=status]`)
	if n := sessionRows(t, ctx); n != 1 {
		t.Errorf("%d sessions listed after ending the others, want 1", n)
	}
	if resp, _ := do(t, other, "GET", g.https+"/x", nil, "Accept", "text/html"); resp.StatusCode != http.StatusFound {
		t.Errorf("the other device is still signed in: %d", resp.StatusCode)
	}

	// Sign out.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(g.https+"/.gatehouse/logout"),
		chromedp.WaitVisible(chromedp.CSS(`form button`)),
		chromedp.Click(chromedp.CSS(`form button`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href*="/.gatehouse/login"]`)),
	); err != nil {
		t.Fatalf("sign out: %v", err)
	}

	// Forgot the password: reset it by mail.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(g.https+"/.gatehouse/login"),
		chromedp.Click(chromedp.CSS(`a[href="/.gatehouse/reset"]`)),
		chromedp.WaitVisible(chromedp.CSS(`input#login`)),
		chromedp.SendKeys(chromedp.CSS(`input#login`), "dave@example.com"),
	); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "reset-request")
	fitsPhone(t, ctx, "reset-request")
	submit(t, ctx, "/.gatehouse/reset", `h1`)
	screenshot(t, ctx, "reset-sent")
	reset := linkIn(t, waitMail(t, mails, 2).data)
	if !strings.Contains(reset, "/.gatehouse/reset/confirm?token=") {
		t.Fatalf("second mail links to %s", reset)
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(reset),
		chromedp.WaitVisible(chromedp.CSS(`input#password`)),
		chromedp.SendKeys(chromedp.CSS(`input#password`), "i'm afraid i can't"),
		chromedp.SendKeys(chromedp.CSS(`input#confirm`), "i'm afraid i can't"),
	); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "reset-new-password")
	fitsPhone(t, ctx, "reset-new-password")
	submit(t, ctx, "/.gatehouse/reset/confirm", `a[href*="/.gatehouse/login"]`)
	screenshot(t, ctx, "reset-done")
	browserSignIn(t, ctx, g.https, "dave", "i'm afraid i can't")

	// The link worked once.
	if err := chromedp.Do(ctx, chromedp.Navigate(reset), chromedp.WaitVisible(chromedp.CSS(`h1`))); err != nil {
		t.Fatal(err)
	}
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('input#password').length`)); n != 0 {
		t.Error("a used reset link still offers a new password")
	}
}
