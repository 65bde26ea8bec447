package loginui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ulule/limiter/v3"

	"github.com/gatehouse-auth/gatehouse/store"
)

// newAdminFixture is the common fixture with room for many sign-ins from
// the one test address; alice is the only admin.
func newAdminFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixture(t, func(c *Config) { c.Limits.PerIP = limiter.Rate{Period: time.Minute, Limit: 1000} })
}

// signedIn is a browser signed in as name (password name+"-password").
func (f *fixture) adminSignIn(t *testing.T, name string) *browser {
	t.Helper()
	b := f.browser(t)
	if resp := b.signIn(name, name+"-password", "/"); resp.StatusCode != http.StatusSeeOther || b.user() != name {
		t.Fatalf("sign-in as %s: %d", name, resp.StatusCode)
	}
	return b
}

// post sends a console form with this browser's CSRF token.
func (b *browser) adminPost(target string, form url.Values) *http.Response {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", b.token("/.gatehouse/login"))
	return b.do("POST", target, form)
}

func (f *fixture) adminLogs() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logs.String()
}

func wantAdminRedirect(t *testing.T, resp *http.Response, status int, location string) {
	t.Helper()
	if resp.StatusCode != status || resp.Header.Get("Location") != location {
		t.Fatalf("got %d to %q, want %d to %q", resp.StatusCode, resp.Header.Get("Location"), status, location)
	}
}

func adminUser(t *testing.T, f *fixture, name string) store.User {
	t.Helper()
	x, err := f.db.User(name)
	if err != nil {
		t.Fatalf("user %s: %v", name, err)
	}
	return x
}

func TestAdminOnlyForAdmins(t *testing.T) {
	f := newAdminFixture(t)
	anon := f.browser(t)
	wantAdminRedirect(t, anon.do("GET", "/.gatehouse/admin?q=b", nil), http.StatusFound, "/.gatehouse/login?rd=%2F.gatehouse%2Fadmin%3Fq%3Db")
	wantAdminRedirect(t, anon.do("GET", "/.gatehouse/admin/users/bob", nil), http.StatusFound, "/.gatehouse/login?rd=%2F.gatehouse%2Fadmin%2Fusers%2Fbob")
	wantAdminRedirect(t, anon.adminPost("/.gatehouse/admin/users/bob/disable", nil), http.StatusSeeOther, "/.gatehouse/login?rd=%2F.gatehouse%2Fadmin")
	resp := anon.do("GET", "/.gatehouse/admin", nil, "Accept", "application/json")
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Gatehouse ") ||
		body(resp) != "{\"error\":\"authentication required\"}\n" {
		t.Errorf("anonymous API client: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	bob := f.adminSignIn(t, "bob")
	for _, target := range []string{"/.gatehouse/admin", "/.gatehouse/admin/new", "/.gatehouse/admin/users/alice", "/.gatehouse/admin/users/alice/delete"} {
		wantPage(t, bob.do("GET", target, nil), http.StatusForbidden, "You don't have access to this page", "<strong>bob</strong>")
	}
	if resp := bob.do("GET", "/.gatehouse/admin", nil, "Accept", "application/json"); resp.StatusCode != 403 || body(resp) != "{\"error\":\"forbidden\"}\n" {
		t.Errorf("non-admin API client: %d", resp.StatusCode)
	}
	// A valid token does not make bob an admin.
	wantPage(t, bob.adminPost("/.gatehouse/admin/users/alice/disable", nil), http.StatusForbidden)
	wantPage(t, bob.adminPost("/.gatehouse/admin/users/bob", url.Values{"roles": {"admin"}}), http.StatusForbidden)
	wantPage(t, bob.adminPost("/.gatehouse/admin/new", url.Values{"username": {"eve"}, "password": {"a-long-password-1"}, "confirm": {"a-long-password-1"}}), http.StatusForbidden)
	if x := adminUser(t, f, "alice"); x.Disabled {
		t.Error("a non-admin disabled alice")
	}
	if x := adminUser(t, f, "bob"); len(x.Roles) != 0 {
		t.Error("a non-admin made himself admin")
	}
	if _, err := f.db.User("eve"); err == nil {
		t.Error("a non-admin created a user")
	}
	if !strings.Contains(f.adminLogs(), `"event":"admin_denied","user":"bob"`) {
		t.Error("no audit event for the refused non-admin")
	}

	alice := f.adminSignIn(t, "alice")
	wantPage(t, alice.do("GET", "/.gatehouse/admin", nil), http.StatusOK, "<h1>Users</h1>")
}

func TestAdminListSearchAndPaging(t *testing.T) {
	f := newAdminFixture(t)
	for i := range 60 {
		if err := f.db.CreateUser(store.User{Username: fmt.Sprintf("user%02d", i), Email: fmt.Sprintf("u%02d@corp.example", i)}); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = f.db.UpdateUser("user07", func(x *store.User) error { x.LockedUntil = f.clock.now().Add(time.Hour); return nil })
	_, _ = f.db.UpdateUser("user08", func(x *store.User) error { x.Pending = true; return nil })
	alice := f.adminSignIn(t, "alice")
	rows := regexp.MustCompile(`<th scope="row"`)
	tests := []struct {
		target     string
		rows       int
		wants      []string
		prev, next string
	}{
		{"/.gatehouse/admin", 25, []string{"63 users.", "Page 1 of 3.", ">alice</a>", "alice@example.com", `data-label="Roles">admin</td>`,
			"2026-05-01 09:00 UTC", ">bob</a>", "never", `badge-disabled">disabled<`, `badge-active">active<`,
			`badge-locked">locked<`, `badge-pending">pending<`}, "", "/.gatehouse/admin?page=2"},
		{"/.gatehouse/admin?page=2", 25, []string{"Page 2 of 3.", ">user22</a>"}, "/.gatehouse/admin", "/.gatehouse/admin?page=3"},
		{"/.gatehouse/admin?page=3", 13, []string{"Page 3 of 3.", ">user59</a>"}, "/.gatehouse/admin?page=2", ""},
		{"/.gatehouse/admin?page=99", 13, []string{"Page 3 of 3."}, "/.gatehouse/admin?page=2", ""},
		{"/.gatehouse/admin?page=-4", 25, []string{"Page 1 of 3."}, "", "/.gatehouse/admin?page=2"},
		{"/.gatehouse/admin?q=USER0", 10, []string{"10 users match", ">user09</a>"}, "", ""},
		{"/.gatehouse/admin?q=corp.example", 25, []string{"60 users match", "Page 1 of 3."}, "", "/.gatehouse/admin?page=2&amp;q=corp.example"},
		{"/.gatehouse/admin?q=corp.example&page=3", 10, []string{"Page 3 of 3."}, "/.gatehouse/admin?page=2&amp;q=corp.example", ""},
		{"/.gatehouse/admin?q=nobody", 0, []string{"0 users match", "No users found."}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			page := wantPage(t, alice.do("GET", tc.target, nil), http.StatusOK, tc.wants...)
			if got := len(rows.FindAllString(page, -1)); got != tc.rows {
				t.Errorf("rows = %d, want %d", got, tc.rows)
			}
			for rel, want := range map[string]string{"prev": tc.prev, "next": tc.next} {
				link := regexp.MustCompile(`href="([^"]*)" rel="` + rel + `"`).FindStringSubmatch(page)
				switch {
				case want == "" && link != nil:
					t.Errorf("%s link %q, want none", rel, link[1])
				case want != "" && (link == nil || link[1] != want):
					t.Errorf("%s link %v, want %q", rel, link, want)
				}
			}
		})
	}
}

func TestAdminCreatesUsers(t *testing.T) {
	f := newAdminFixture(t)
	alice := f.adminSignIn(t, "alice")
	page := wantPage(t, alice.do("GET", "/.gatehouse/admin/new", nil), http.StatusOK, `action="/.gatehouse/admin/new"`, `name="password"`)
	if strings.Contains(page, `name="invite"`) {
		t.Error("the invitation option shows without a mailer")
	}
	good := func() url.Values {
		return url.Values{"username": {" Carol "}, "email": {"Carol@Example.com"}, "display_name": {"Carol Smith"},
			"roles": {"reader, editor reader"}, "password": {"tulip-bicycle-42"}, "confirm": {"tulip-bicycle-42"}}
	}
	wantAdminRedirect(t, alice.adminPost("/.gatehouse/admin/new", good()), http.StatusSeeOther, "/.gatehouse/admin/users/carol?done=created")
	wantPage(t, alice.do("GET", "/.gatehouse/admin/users/carol?done=created", nil), http.StatusOK,
		`role="status">User carol was created.</div>`, `value="carol@example.com"`, `value="Carol Smith"`, `value="editor, reader"`)
	carol := adminUser(t, f, "carol")
	if carol.Email != "carol@example.com" || !carol.EmailVerified || carol.DisplayName != "Carol Smith" ||
		!slices.Equal(carol.Roles, []string{"editor", "reader"}) || !strings.HasPrefix(carol.PasswordHash, "$argon2id$") || carol.Pending {
		t.Errorf("created %+v", carol)
	}
	if b := f.browser(t); b.signIn("carol@example.com", "tulip-bicycle-42", "/").StatusCode != http.StatusSeeOther {
		t.Error("the new user cannot sign in")
	}
	logs := f.adminLogs()
	if !strings.Contains(logs, `"event":"admin_user_created","admin":"alice","user":"carol","ip":"192.0.2.10","roles":"editor,reader"`) {
		t.Errorf("no audit event:\n%s", logs)
	}

	tests := []struct {
		name   string
		change func(url.Values)
		status int
		msg    string
	}{
		{"duplicate username", func(v url.Values) { v.Set("username", "BOB"); v.Set("email", "") }, 409, msgAdminUserExists},
		{"duplicate email", func(v url.Values) { v.Set("username", "carol2"); v.Set("email", "BOB@example.com") }, 409, msgAdminEmailExists},
		{"no password", func(v url.Values) { v.Set("username", "dan"); v.Del("password"); v.Del("confirm") }, 400, msgAdminNeedPassword},
		{"short password", func(v url.Values) { v.Set("username", "dan"); v.Set("password", "short1"); v.Set("confirm", "short1") }, 400, "Use at least 8 characters."},
		{"common password", func(v url.Values) {
			v.Set("username", "dan")
			v.Set("password", "password123")
			v.Set("confirm", "password123")
		}, 400, string(msgPasswordCommon)},
		{"password is the username", func(v url.Values) {
			v.Set("username", "danielsmith")
			v.Set("password", "danielsmith")
			v.Set("confirm", "danielsmith")
		}, 400, string(msgPasswordIsName)},
		{"mismatch", func(v url.Values) { v.Set("username", "dan"); v.Set("confirm", "tulip-bicycle-43") }, 400, string(msgPasswordMismatch)},
		{"invitation without a mailer", func(v url.Values) { v.Set("username", "dan"); v.Set("invite", "1") }, 400, msgAdminNoMailer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			form := good()
			tc.change(form)
			page := wantPage(t, alice.adminPost("/.gatehouse/admin/new", form), tc.status, `role="alert" id="form-error">`+htmlEscape(tc.msg)+`</div>`)
			if !strings.Contains(page, `aria-invalid="true"`) {
				t.Error("no input is marked invalid")
			}
			if strings.Contains(page, "tulip-bicycle") {
				t.Error("the password was echoed back")
			}
		})
	}
	for _, name := range []string{"carol2", "dan", "danielsmith"} {
		if _, err := f.db.User(name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("user %s was created by a refused form", name)
		}
	}
	if strings.Contains(f.adminLogs(), "tulip-bicycle") {
		t.Error("a password reached the log")
	}
}

func TestAdminRoleChangeReachesTheNextRequest(t *testing.T) {
	f := newAdminFixture(t)
	alice := f.adminSignIn(t, "alice")
	bob := f.adminSignIn(t, "bob")
	wantPage(t, bob.do("GET", "/.gatehouse/admin", nil), http.StatusForbidden)

	form := url.Values{"email": {"robert@example.com"}, "display_name": {"Robert"}, "roles": {"admin editor"}}
	wantAdminRedirect(t, alice.adminPost("/.gatehouse/admin/users/bob", form), http.StatusSeeOther, "/.gatehouse/admin/users/bob?done=updated")
	wantPage(t, alice.do("GET", "/.gatehouse/admin/users/bob?done=updated", nil), 200, "The changes to bob were saved.")
	// Bob's very next request sees the new roles: the console opens.
	wantPage(t, bob.do("GET", "/.gatehouse/admin", nil), http.StatusOK, "<h1>Users</h1>")
	x := adminUser(t, f, "bob")
	if x.Email != "robert@example.com" || x.DisplayName != "Robert" || !slices.Equal(x.Roles, []string{"admin", "editor"}) {
		t.Errorf("bob is %+v", x)
	}
	if !strings.Contains(f.adminLogs(), `"event":"admin_user_updated","admin":"alice","user":"bob","ip":"192.0.2.10","changed":"email,display_name,roles","roles":"admin,editor","previous_roles":""`) {
		t.Errorf("no audit event:\n%s", f.adminLogs())
	}

	wantAdminRedirect(t, alice.adminPost("/.gatehouse/admin/users/bob", url.Values{"email": {"robert@example.com"}, "roles": {"reader"}}),
		http.StatusSeeOther, "/.gatehouse/admin/users/bob?done=updated")
	wantPage(t, bob.do("GET", "/.gatehouse/admin", nil), http.StatusForbidden)
	if u := bob.user(); u != "bob" {
		t.Errorf("bob signed out by a role change: %q", u)
	}

	// The email of another user is refused.
	wantPage(t, alice.adminPost("/.gatehouse/admin/users/bob", url.Values{"email": {"alice@example.com"}}), http.StatusConflict, msgAdminEmailExists)
	wantPage(t, alice.adminPost("/.gatehouse/admin/users/nobody", url.Values{}), http.StatusNotFound)
}

func TestAdminDisableEndsTheLiveSession(t *testing.T) {
	f := newAdminFixture(t)
	alice := f.adminSignIn(t, "alice")
	bob := f.adminSignIn(t, "bob")
	wantAdminRedirect(t, alice.adminPost("/.gatehouse/admin/users/bob/disable", nil), http.StatusSeeOther, "/.gatehouse/admin/users/bob?done=disabled")
	if bob.user() != "" {
		t.Error("a disabled user's live session still works")
	}
	wantPage(t, alice.do("GET", "/.gatehouse/admin/users/bob?done=disabled", nil), 200,
		"User bob was disabled and signed out everywhere.", `badge-disabled">disabled<`, `action="/.gatehouse/admin/users/bob/enable"`)
	if b := f.browser(t); b.signIn("bob", "bob-password", "/").StatusCode != http.StatusUnauthorized {
		t.Error("a disabled user signed in")
	}
	wantAdminRedirect(t, alice.adminPost("/.gatehouse/admin/users/bob/enable", nil), http.StatusSeeOther, "/.gatehouse/admin/users/bob?done=enabled")
	if bob.user() != "" {
		t.Error("enabling the account revived the old session")
	}
	f.adminSignIn(t, "bob")
	logs := f.adminLogs()
	for _, event := range []string{`"event":"admin_user_disabled","admin":"alice","user":"bob"`, `"event":"admin_user_enabled","admin":"alice","user":"bob"`} {
		if !strings.Contains(logs, event) {
			t.Errorf("no %s", event)
		}
	}
}

func TestAdminUnlocks(t *testing.T) {
	f := newAdminFixture(t)
	alice := f.adminSignIn(t, "alice")
	for range 5 {
		f.browser(t).signIn("bob", "wrong-password", "/")
	}
	if x := adminUser(t, f, "bob"); !x.LockedUntil.After(f.clock.now()) {
		t.Fatalf("bob is not locked: %+v", x)
	}
	wantPage(t, alice.do("GET", "/.gatehouse/admin/users/bob", nil), 200, `badge-locked">locked<`, `action="/.gatehouse/admin/users/bob/unlock"`)
	wantAdminRedirect(t, alice.adminPost("/.gatehouse/admin/users/bob/unlock", nil), http.StatusSeeOther, "/.gatehouse/admin/users/bob?done=unlocked")
	if x := adminUser(t, f, "bob"); !x.LockedUntil.IsZero() || x.FailedLogins != 0 {
		t.Errorf("still locked: %+v", x)
	}
	f.adminSignIn(t, "bob") // the per-account rate limit is lifted too
	if !strings.Contains(f.adminLogs(), `"event":"admin_user_unlocked","admin":"alice","user":"bob"`) {
		t.Error("no audit event")
	}
}

func TestAdminResetsPasswordsAndEndsSessions(t *testing.T) {
	f := newAdminFixture(t)
	alice := f.adminSignIn(t, "alice")
	bob1, bob2 := f.adminSignIn(t, "bob"), f.adminSignIn(t, "bob")

	page := wantPage(t, alice.adminPost("/.gatehouse/admin/users/bob/password", url.Values{"password": {"otter-lantern-9"}, "confirm": {"otter-lantern-8"}}),
		http.StatusBadRequest, string(msgPasswordMismatch), `id="confirm" name="confirm" type="password" autocomplete="new-password" aria-invalid="true"`)
	if strings.Contains(page, "otter-lantern") || bob1.user() != "bob" {
		t.Error("a refused reset echoed the password or ended sessions")
	}
	wantAdminRedirect(t, alice.adminPost("/.gatehouse/admin/users/bob/password", url.Values{"password": {"otter-lantern-9"}, "confirm": {"otter-lantern-9"}}),
		http.StatusSeeOther, "/.gatehouse/admin/users/bob?done=password")
	if bob1.user() != "" || bob2.user() != "" {
		t.Error("the user's sessions survived a password reset")
	}
	if b := f.browser(t); b.signIn("bob", "bob-password", "/").StatusCode != http.StatusUnauthorized {
		t.Error("the old password still works")
	}
	if b := f.browser(t); b.signIn("bob", "otter-lantern-9", "/").StatusCode != http.StatusSeeOther {
		t.Error("the new password does not work")
	}
	if !strings.Contains(f.adminLogs(), `"event":"admin_password_reset","admin":"alice","user":"bob","ip":"192.0.2.10","sessions_ended":2`) {
		t.Errorf("no audit event:\n%s", f.adminLogs())
	}

	// End all sessions, without a password change.
	bob3 := f.browser(t)
	if bob3.signIn("bob", "otter-lantern-9", "/"); bob3.user() != "bob" {
		t.Fatal("bob cannot sign in with the new password")
	}
	wantPage(t, alice.do("GET", "/.gatehouse/admin/users/bob", nil), 200, "<dt>Sessions</dt><dd>2</dd>")
	wantAdminRedirect(t, alice.adminPost("/.gatehouse/admin/users/bob/sessions", nil), http.StatusSeeOther, "/.gatehouse/admin/users/bob?done=sessions")
	if bob3.user() != "" {
		t.Error("a session survived \"end all sessions\"")
	}

	// An admin's own reset keeps the session they are using.
	aliceElsewhere := f.adminSignIn(t, "alice")
	wantAdminRedirect(t, alice.adminPost("/.gatehouse/admin/users/alice/password", url.Values{"password": {"heron-violin-77"}, "confirm": {"heron-violin-77"}}),
		http.StatusSeeOther, "/.gatehouse/admin/users/alice?done=password")
	if alice.user() != "alice" || aliceElsewhere.user() != "" {
		t.Errorf("own reset: this session %q, the other %q", alice.user(), aliceElsewhere.user())
	}
	for _, secret := range []string{"otter-lantern", "heron-violin"} {
		if strings.Contains(f.adminLogs(), secret) {
			t.Error("a password reached the log")
		}
	}
}

func TestAdminDeletesAfterConfirmation(t *testing.T) {
	f := newAdminFixture(t)
	alice := f.adminSignIn(t, "alice")
	bob := f.adminSignIn(t, "bob")
	page := wantPage(t, alice.do("GET", "/.gatehouse/admin/users/bob/delete", nil), http.StatusOK,
		"<h1>Delete bob?</h1>", `action="/.gatehouse/admin/users/bob/delete"`, `href="/.gatehouse/admin/users/bob">Cancel</a>`)
	if !tokenRE.MatchString(page) {
		t.Error("the confirmation form has no CSRF token")
	}
	adminUser(t, f, "bob") // asking is not deleting
	wantAdminRedirect(t, alice.adminPost("/.gatehouse/admin/users/bob/delete", nil), http.StatusSeeOther, "/.gatehouse/admin?done=deleted&user=bob")
	wantPage(t, alice.do("GET", "/.gatehouse/admin?done=deleted&user=bob", nil), 200, `role="status">User bob was deleted.</div>`)
	if _, err := f.db.User("bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bob still exists: %v", err)
	}
	if bob.user() != "" {
		t.Error("a deleted user's session still works")
	}
	wantPage(t, alice.do("GET", "/.gatehouse/admin/users/bob", nil), http.StatusNotFound)
	wantPage(t, alice.adminPost("/.gatehouse/admin/users/bob/delete", nil), http.StatusNotFound)
	if !strings.Contains(f.adminLogs(), `"event":"admin_user_deleted","admin":"alice","user":"bob"`) {
		t.Error("no audit event")
	}
	// A notice names only a valid username.
	if page := body(alice.do("GET", "/.gatehouse/admin?done=deleted&user=%3Cb%3Eyou+were+hacked", nil)); strings.Contains(page, "hacked") {
		t.Error("a link planted text in the notice")
	}
}

func TestAdminCannotRemoveTheLastAdmin(t *testing.T) {
	f := newAdminFixture(t)
	alice := f.adminSignIn(t, "alice")
	tests := []struct{ name, target string }{
		{"self-demotion", "/.gatehouse/admin/users/alice"},
		{"self-disable", "/.gatehouse/admin/users/alice/disable"},
		{"self-delete", "/.gatehouse/admin/users/alice/delete"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantPage(t, alice.adminPost(tc.target, url.Values{"email": {"alice@example.com"}, "roles": {"reader"}}), http.StatusConflict,
				`role="alert" id="form-error">`+msgAdminLastAdmin+`</div>`)
			x := adminUser(t, f, "alice")
			if x.Disabled || !slices.Equal(x.Roles, []string{"admin"}) {
				t.Errorf("alice is now %+v", x)
			}
			if alice.user() != "alice" {
				t.Error("alice lost her session")
			}
		})
	}
	page := wantPage(t, alice.do("GET", "/.gatehouse/admin/users/alice/delete", nil), http.StatusOK, msgAdminLastAdmin)
	if strings.Contains(page, `action="/.gatehouse/admin/users/alice/delete"`) {
		t.Error("the delete page offers to delete the last admin")
	}
	// A pending or disabled admin does not count.
	_ = f.db.CreateUser(store.User{Username: "pat", Roles: []string{"admin"}, Pending: true})
	_, _ = f.db.UpdateUser("dora", func(x *store.User) error { x.Roles = []string{"admin"}; return nil })
	wantPage(t, alice.adminPost("/.gatehouse/admin/users/alice/disable", nil), http.StatusConflict, msgAdminLastAdmin)

	// With a second admin, alice may step down, and then she is out.
	wantAdminRedirect(t, alice.adminPost("/.gatehouse/admin/users/pat/approve", nil), http.StatusSeeOther, "/.gatehouse/admin/users/pat?done=approved")
	if adminUser(t, f, "pat").Pending {
		t.Fatal("pat is still pending")
	}
	wantAdminRedirect(t, alice.adminPost("/.gatehouse/admin/users/alice", url.Values{"email": {"alice@example.com"}, "roles": {"reader"}}),
		http.StatusSeeOther, "/.gatehouse/admin/users/alice?done=updated")
	wantPage(t, alice.do("GET", "/.gatehouse/admin", nil), http.StatusForbidden)
	if !strings.Contains(f.adminLogs(), `"event":"admin_user_approved","admin":"alice","user":"pat"`) {
		t.Error("no audit event for the approval")
	}
}

func TestAdminRefusesForgedPosts(t *testing.T) {
	f := newAdminFixture(t)
	alice := f.adminSignIn(t, "alice")
	token := alice.token("/.gatehouse/admin/new")
	tests := []struct {
		name    string
		form    url.Values
		headers []string
	}{
		{"cross-site origin", url.Values{"csrf": {token}}, []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}},
		{"cross-site fetch metadata", url.Values{"csrf": {token}}, []string{"Sec-Fetch-Site", "cross-site"}},
		{"no token", url.Values{}, nil},
		{"forged token", url.Values{"csrf": {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}, nil},
		{"another browser's token", url.Values{"csrf": {f.browser(t).token("/.gatehouse/login")}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, target := range []string{"/.gatehouse/admin/users/bob/disable", "/.gatehouse/admin/users/bob/delete", "/.gatehouse/admin/users/bob"} {
				form := url.Values{"roles": {"admin"}}
				for k, v := range tc.form {
					form[k] = v
				}
				if resp := alice.do("POST", target, form, tc.headers...); resp.StatusCode != http.StatusForbidden {
					t.Errorf("%s: status %d, want 403", target, resp.StatusCode)
				}
			}
			if x := adminUser(t, f, "bob"); x.Disabled || len(x.Roles) != 0 {
				t.Errorf("a forged post changed bob: %+v", x)
			}
		})
	}
}

func TestAdminHostileInput(t *testing.T) {
	f := newAdminFixture(t)
	alice := f.adminSignIn(t, "alice")
	create := func(change func(url.Values)) *http.Response {
		form := url.Values{"username": {"mallory"}, "display_name": {"Mallory"}, "password": {"tulip-bicycle-42"}, "confirm": {"tulip-bicycle-42"}}
		change(form)
		return alice.adminPost("/.gatehouse/admin/new", form)
	}
	tests := []struct {
		name   string
		change func(url.Values)
		msg    string
	}{
		{"long username", func(v url.Values) { v.Set("username", strings.Repeat("m", 65)) }, msgAdminBadUsername},
		{"username with spaces", func(v url.Values) { v.Set("username", "mal lory") }, msgAdminBadUsername},
		{"username with markup", func(v url.Values) { v.Set("username", "<script>") }, msgAdminBadUsername},
		{"username with an @", func(v url.Values) { v.Set("username", "bob@example.com") }, msgAdminBadUsername},
		{"CR/LF in email", func(v url.Values) { v.Set("email", "m@example.com\r\nBcc: all@example.com") }, msgAdminBadEmail},
		{"trailing LF in email", func(v url.Values) { v.Set("email", "m@example.com\n") }, msgAdminBadEmail},
		{"two @ in email", func(v url.Values) { v.Set("email", "m@evil.example@example.com") }, msgAdminBadEmail},
		{"long email", func(v url.Values) { v.Set("email", strings.Repeat("m", 250)+"@example.com") }, msgAdminBadEmail},
		{"long display name", func(v url.Values) { v.Set("display_name", strings.Repeat("é", 129)) }, msgAdminBadDisplayName},
		{"LF in display name", func(v url.Values) { v.Set("display_name", "Mallory\nRemote-User: alice") }, msgAdminBadDisplayName},
		{"punctuation in a role", func(v url.Values) { v.Set("roles", "reader;admin=1") }, msgAdminBadRoles},
		{"long role", func(v url.Values) { v.Set("roles", strings.Repeat("r", 65)) }, msgAdminBadRoles},
		{"too many roles", func(v url.Values) {
			var roles []string
			for i := range maxRoles + 1 {
				roles = append(roles, fmt.Sprintf("r%d", i))
			}
			v.Set("roles", strings.Join(roles, ","))
		}, msgAdminBadRoles},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page := wantPage(t, create(tc.change), http.StatusBadRequest, htmlEscape(tc.msg))
			if strings.Contains(page, "<script>") {
				t.Error("markup echoed unescaped")
			}
		})
	}
	if n, _ := f.db.CountUsers(); n != 3 {
		t.Errorf("%d users after hostile forms, want 3", n)
	}
	// Markup in a display name is stored as text and shown escaped.
	xss := `<script>alert(1)</script><img src=x onerror=alert(2)>`
	wantAdminRedirect(t, create(func(v url.Values) { v.Set("display_name", xss); v.Set("roles", "a-b c.d e_f g:h") }),
		http.StatusSeeOther, "/.gatehouse/admin/users/mallory?done=created")
	for _, target := range []string{"/.gatehouse/admin", "/.gatehouse/admin/users/mallory", "/.gatehouse/admin/users/mallory/delete",
		"/.gatehouse/admin?q=" + url.QueryEscape(xss)} {
		page := wantPage(t, alice.do("GET", target, nil), http.StatusOK)
		if strings.Contains(page, "<script>") || strings.Contains(page, "<img") {
			t.Errorf("%s shows markup unescaped", target)
		}
	}
	if !slices.Equal(adminUser(t, f, "mallory").Roles, []string{"a-b", "c.d", "e_f", "g:h"}) {
		t.Errorf("roles = %v", adminUser(t, f, "mallory").Roles)
	}
	if resp := alice.adminPost("/.gatehouse/admin/new", url.Values{"username": {strings.Repeat("x", 20<<10)}}); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("huge form: %d, want 413", resp.StatusCode)
	}
	for _, target := range []string{"/.gatehouse/admin/users/%3Cb%3E", "/.gatehouse/admin/users/" + strings.Repeat("a", 100)} {
		wantPage(t, alice.do("GET", target, nil), http.StatusNotFound)
	}
	wantPage(t, alice.adminPost("/.gatehouse/admin/users/bob/explode", nil), http.StatusNotFound)
	if resp := alice.do("GET", "/.gatehouse/admin/users/bob/disable", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET of an action: %d, want 405", resp.StatusCode)
	}
}

func TestAdminPagesAreAccessibleAndLocked(t *testing.T) {
	f := newAdminFixture(t)
	alice := f.adminSignIn(t, "alice")
	_, _ = f.db.UpdateUser("bob", func(x *store.User) error { x.LockedUntil = f.clock.now().Add(time.Hour); x.Pending = true; return nil })
	inputs := regexp.MustCompile(`<input id="([^"]+)"`)
	forms := regexp.MustCompile(`(?s)<form method="post".*?</form>`)
	for _, target := range []string{"/.gatehouse/admin", "/.gatehouse/admin/new", "/.gatehouse/admin/users/bob", "/.gatehouse/admin/users/bob/delete"} {
		resp := alice.do("GET", target, nil)
		page := wantPage(t, resp, http.StatusOK, `<html lang="en">`, `href="/.gatehouse/static/style.css"`, `<nav class="admin-nav" aria-label="Admin console">`)
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
		for _, form := range forms.FindAllString(page, -1) {
			if !tokenRE.MatchString(form) {
				t.Errorf("%s: a form without a CSRF token:\n%s", target, form)
			}
		}
	}
	wantPage(t, alice.do("GET", "/.gatehouse/admin/users/bob", nil), 200, `badge-pending">pending<`,
		`action="/.gatehouse/admin/users/bob/approve"`, `action="/.gatehouse/admin/users/bob/unlock"`)
	css := body(alice.do("GET", "/.gatehouse/static/style.css", nil))
	for _, want := range []string{".admin-table", "@media (max-width: 640px)", "attr(data-label)"} {
		if !strings.Contains(css, want) {
			t.Errorf("stylesheet lacks %s", want)
		}
	}
}

// TestAdminPasswordFormsAreRateLimited: setting a password in the console
// (for a new user or an existing one) hashes it like every password form,
// so it counts against the client address's limit too: a stolen or
// scripted admin session cannot hold every hashing slot and starve the
// sign-ins of everyone else. The answer is 429 with Retry-After, and
// nothing changes.
func TestAdminPasswordFormsAreRateLimited(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Limits.PerIP = limiter.Rate{Period: time.Minute, Limit: 3} })
	alice := f.adminSignIn(t, "alice") // one of the three
	set := func(pw string) *http.Response {
		return alice.adminPost("/.gatehouse/admin/users/bob/password", url.Values{"password": {pw}, "confirm": {pw}})
	}
	wantAdminRedirect(t, set("otter-lantern-1"), http.StatusSeeOther, "/.gatehouse/admin/users/bob?done=password")
	create := url.Values{"username": {"erin"}, "password": {"otter-lantern-2"}, "confirm": {"otter-lantern-2"}}
	wantAdminRedirect(t, alice.adminPost("/.gatehouse/admin/new", create), http.StatusSeeOther, "/.gatehouse/admin/users/erin?done=created")
	before := adminUser(t, f, "bob").PasswordHash
	resp := set("otter-lantern-3")
	wantPage(t, resp, http.StatusTooManyRequests)
	if resp.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if adminUser(t, f, "bob").PasswordHash != before {
		t.Error("a limited reset changed the password")
	}
	create.Set("username", "fred")
	wantPage(t, alice.adminPost("/.gatehouse/admin/new", create), http.StatusTooManyRequests)
	if _, err := f.db.User("fred"); err == nil {
		t.Error("a limited create made the user")
	}
}
