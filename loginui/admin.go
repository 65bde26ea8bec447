package loginui

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gatehouse-auth/gatehouse/store"
)

// The admin console (SPEC §9): list and search users, create, edit roles,
// enable and disable, unlock, reset a password, end sessions, delete. Only
// a signed-in user with the admin role gets in; every change is an audit
// event and reaches the affected user on their next request, because
// Authenticate reads the user from the store on every request.

// Where the console lives. A user's page is adminUsersPath + username;
// "new" is outside that path so that a user called "new" keeps a page.
const (
	adminPath      = "/.gatehouse/admin"
	adminNewPath   = "/.gatehouse/admin/new"
	adminUsersPath = "/.gatehouse/admin/users/"
)

// Bounds on what the console accepts and shows.
const (
	adminPageSize  = 25
	maxDisplayName = 128 // characters
	maxRoles       = 32
	maxQuery       = 256
)

// Texts the console shows; tests pin them.
const (
	msgAdminBadUsername      = "A username is 1 to 64 characters: letters a-z, digits, '.', '_' and '-', starting with a letter or digit."
	msgAdminBadEmail         = "Enter an email address like name@example.com, or leave it empty."
	msgAdminBadDisplayName   = "The display name must be one line of at most 128 characters."
	msgAdminBadRoles         = "Separate roles with commas or spaces. A role is at most 64 letters, digits, '.', '_', ':' or '-', and a user has at most 32."
	msgAdminUserExists       = "A user with this username already exists."
	msgAdminEmailExists      = "Another user already has this email address."
	msgAdminLastAdmin        = "This is the last enabled administrator: give another account the admin role first."
	msgAdminNeedPassword     = "Set a password for the new user."
	msgAdminNoMailer         = "Invitations need outgoing mail, which is not configured. Set a password instead."
	msgAdminInviteNeedsEmail = "An invitation is sent by email: enter the user's email address."
)

// msgAdminNoInvite: an invitation only goes to an enabled user with an
// address who never set a password, and only when mail is configured.
const msgAdminNoInvite = "An invitation can only be sent, with mail configured, to an enabled user with an email address who has not set a password yet."

// adminNotices are the messages shown after a change (POST-redirect-GET).
// The redirect carries only the key, so no text can be planted in a link.
var adminNotices = map[string]string{
	"created":   "User %s was created.",
	"invited":   "User %s was created and an invitation was sent.",
	"uninvited": "User %s was created, but the invitation could not be sent: set a password below.",
	"reinvited": "A new invitation was sent to %s; earlier links no longer work.",
	"updated":   "The changes to %s were saved.",
	"enabled":   "User %s was enabled.",
	"disabled":  "User %s was disabled and signed out everywhere.",
	"unlocked":  "User %s was unlocked.",
	"password":  "The password of %s was reset and their sessions were ended.",
	"sessions":  "Every session of %s was ended.",
	"approved":  "User %s was approved.",
	"deleted":   "User %s was deleted.",
}

// roleRE is one role: it travels upstream in a comma-separated header, so
// no commas, spaces or control characters.
var roleRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)

// ValidRole reports whether s is a role name: 1 to 64 letters, digits,
// '.', '_', ':' and '-', starting with a letter or digit. The config and
// the CLI check roles with it too.
func ValidRole(s string) bool { return roleRE.MatchString(s) }

// adminData is what the console's templates get besides the common page.
type adminData struct {
	Notice string
	Field  string // the input page.Error is about, for aria-invalid

	// The list.
	Query       string
	Rows        []adminRow
	Total       int
	PageNo      int
	Pages       int
	Prev, Next  string
	Target      adminRow // the user on an edit or delete page
	Form        adminForm
	Sessions    int
	Self        bool // the target is the acting admin
	Invite      bool // invitations can be sent
	MinPassword int
}

// adminRow is a user as the console shows it.
type adminRow struct {
	Username     string
	Email        string
	DisplayName  string
	Roles        string
	Status       string // active, disabled, locked or pending
	LastSignIn   string
	Created      string
	FailedLogins int
	Disabled     bool
	Locked       bool
	Pending      bool
	Invited      bool // has an email and no password yet: an invitation can be (re)sent
	URL          string
}

// adminForm holds what a form sent, to show it again with an error.
type adminForm struct {
	Username    string
	Email       string
	DisplayName string
	Roles       string
	Invite      bool
}

// adminHandler is a console page; actor is the signed-in admin.
type adminHandler func(w http.ResponseWriter, r *http.Request, actor *store.User)

// adminRoutes registers the console. post wraps a form handler with the
// cross-origin check and the body limit.
func (u *UI) adminRoutes(mux *http.ServeMux, post func(http.HandlerFunc) http.Handler) {
	for _, name := range []string{"admin_users", "admin_user", "admin_new", "admin_delete"} {
		// Embedded templates: an error is a programming error every test sees.
		u.pages[name] = template.Must(template.ParseFS(templateFS,
			"templates/layout.html", "templates/admin_parts.html", "templates/"+name+".html"))
	}
	mux.HandleFunc("GET "+adminPath, u.admin(u.adminList))
	mux.HandleFunc("GET "+adminNewPath, u.admin(u.adminNewPage))
	mux.Handle("POST "+adminNewPath, post(u.admin(u.adminCreate)))
	mux.HandleFunc("GET "+adminUsersPath+"{name}", u.admin(u.adminUserPage))
	mux.Handle("POST "+adminUsersPath+"{name}", post(u.admin(u.adminUpdate)))
	mux.Handle("POST "+adminUsersPath+"{name}/{action}", post(u.admin(u.adminAction)))
	mux.HandleFunc("GET "+adminUsersPath+"{name}/delete", u.admin(u.adminDeletePage))
	mux.Handle("POST "+adminUsersPath+"{name}/delete", post(u.admin(u.adminDelete)))
}

// admin lets only signed-in admins through: anonymous browsers go to the
// sign-in page, other anonymous clients get 401, signed-in users without
// the role the 403 page. A form post must carry this browser's CSRF token.
func (u *UI) admin(h adminHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		actor, err := u.Authenticate(r)
		if err != nil {
			u.log.Error("admin: authenticating", "err", err)
			u.Error(w, r, http.StatusInternalServerError)
			return
		}
		if actor == nil {
			u.adminSignIn(w, r)
			return
		}
		if !isActiveAdmin(actor) {
			u.log.Info("audit", "event", "admin_denied", "user", actor.Username, "ip", u.clientAddr(r), "path", truncate(r.URL.Path, 256))
			if !wantsHTML(r) {
				writeJSON(w, http.StatusForbidden, `{"error":"forbidden"}`)
				return
			}
			u.Forbidden(w, r, actor, "")
			return
		}
		if r.Method == http.MethodPost && !u.csrfOK(r) {
			u.log.Warn("admin form refused: no valid CSRF token", "admin", actor.Username, "ip", u.clientAddr(r))
			u.Error(w, r, http.StatusForbidden)
			return
		}
		h(w, r, actor)
	}
}

// isActiveAdmin: the user may use the console (an active admin, as the store
// counts them for ErrLastAdmin).
func isActiveAdmin(x *store.User) bool {
	return x != nil && !x.Disabled && !x.Pending && slices.Contains(x.Roles, store.AdminRole)
}

// adminSignIn answers an anonymous request: browsers go to the sign-in
// page and come back (a form post comes back to the list, since its
// address is not a page), other clients get 401 (SPEC §5).
func (u *UI) adminSignIn(w http.ResponseWriter, r *http.Request) {
	if wantsHTML(r) {
		rd, status := r.URL.RequestURI(), http.StatusFound
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			rd, status = adminPath, http.StatusSeeOther
		}
		u.securityHeaders(w.Header())
		http.Redirect(w, r, "/.gatehouse/login?rd="+url.QueryEscape(rd), status)
		return
	}
	w.Header().Set("WWW-Authenticate", `Gatehouse realm="gatehouse", login="/.gatehouse/login"`)
	writeJSON(w, http.StatusUnauthorized, `{"error":"authentication required"}`)
}

// adminPage renders a console page.
func (u *UI) adminPage(w http.ResponseWriter, r *http.Request, status int, name, heading string, actor *store.User, errMsg string, d *adminData) {
	u.render(w, status, name, page{Heading: heading, CSRF: u.csrfToken(w, r), User: actor, Error: errMsg, Admin: d})
}

// adminSeeOther ends a change: the browser loads the page again with a notice.
func (u *UI) adminSeeOther(w http.ResponseWriter, r *http.Request, target string) {
	u.securityHeaders(w.Header())
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func adminUserURL(name string) string { return adminUsersPath + url.PathEscape(name) }

// adminNotice is the message for the done key of a redirect, or "".
func adminNotice(key, name string) string {
	if text, ok := adminNotices[key]; ok && name != "" {
		return fmt.Sprintf(text, name)
	}
	return ""
}

// adminAudit records an admin change. Never pass a password.
func (u *UI) adminAudit(r *http.Request, event string, actor *store.User, target string, attrs ...any) {
	args := append([]any{"event", event, "admin", actor.Username, "user", target, "ip", u.clientAddr(r)}, attrs...)
	u.log.Info("audit", args...)
}

// adminRowOf is how the console shows a user.
func (u *UI) adminRowOf(x store.User) adminRow {
	now := u.now()
	row := adminRow{
		Username: x.Username, Email: x.Email, DisplayName: x.DisplayName,
		Roles: strings.Join(x.Roles, ", "), LastSignIn: "never", Created: adminTime(x.Created),
		FailedLogins: x.FailedLogins, Disabled: x.Disabled, Locked: x.LockedUntil.After(now),
		Pending: x.Pending, Invited: x.PasswordHash == "" && x.Email != "", URL: adminUserURL(x.Username),
	}
	if !x.LastSignIn.IsZero() {
		row.LastSignIn = adminTime(x.LastSignIn)
	}
	switch {
	case row.Pending:
		row.Status = "pending"
	case row.Disabled:
		row.Status = "disabled"
	case row.Locked:
		row.Status = "locked"
	default:
		row.Status = "active"
	}
	return row
}

func adminTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func (u *UI) adminList(w http.ResponseWriter, r *http.Request, actor *store.User) {
	query := r.URL.Query()
	q := strings.TrimSpace(truncate(query.Get("q"), maxQuery))
	pageNo, _ := strconv.Atoi(query.Get("page"))
	pageNo = min(max(pageNo, 1), 1<<20)
	users, total, err := u.db.SearchUsers(q, (pageNo-1)*adminPageSize, adminPageSize)
	pages := max(1, (total+adminPageSize-1)/adminPageSize)
	if err == nil && pageNo > pages {
		pageNo = pages
		users, total, err = u.db.SearchUsers(q, (pageNo-1)*adminPageSize, adminPageSize)
	}
	if err != nil {
		u.log.Error("admin: listing users", "err", err)
		u.Error(w, r, http.StatusInternalServerError)
		return
	}
	d := &adminData{Query: q, Total: total, PageNo: pageNo, Pages: pages}
	if name, err := store.CanonicalUsername(query.Get("user")); err == nil {
		d.Notice = adminNotice(query.Get("done"), name)
	}
	for _, x := range users {
		d.Rows = append(d.Rows, u.adminRowOf(x))
	}
	link := func(n int) string {
		v := url.Values{}
		if q != "" {
			v.Set("q", q)
		}
		if n > 1 {
			v.Set("page", strconv.Itoa(n))
		}
		if len(v) == 0 {
			return adminPath
		}
		return adminPath + "?" + v.Encode()
	}
	if pageNo > 1 {
		d.Prev = link(pageNo - 1)
	}
	if pageNo < pages {
		d.Next = link(pageNo + 1)
	}
	u.adminPage(w, r, http.StatusOK, "admin_users", "Users", actor, "", d)
}

// Invitations: with a Mailer, the create form offers "send an invitation"
// instead of a password. sendInvitation runs after the user (with no
// password, so unable to sign in) is committed: it issues a PurposeInvite
// token valid for InviteTTL and mails a link to the page that consumes it
// and sets the first password (setPassword). A failed send is logged; the
// user stays created and the admin can set a password instead.
func (u *UI) invitationsEnabled() bool { return u.mailer != nil }

// errAdminNoMailer: an invitation was asked for but no Mailer is wired in.
var errAdminNoMailer = errors.New("loginui: no mailer configured")

func (u *UI) sendInvitation(r *http.Request, x store.User) error {
	if u.mailer == nil {
		return errAdminNoMailer
	}
	token, err := u.db.CreateToken(x.Username, store.PurposeInvite, u.cfg.InviteTTL)
	if err != nil {
		return err
	}
	link, err := u.mailLink(r, invitePath, token)
	if err != nil {
		return err
	}
	return u.send(context.WithoutCancel(r.Context()), mailInvite, x.Email,
		mailData{Name: x.DisplayName, Username: x.Username, Link: link, Expires: u.cfg.InviteTTL})
}

func (u *UI) adminNewPage(w http.ResponseWriter, r *http.Request, actor *store.User) {
	d := &adminData{Invite: u.invitationsEnabled(), MinPassword: u.adminMinPassword()}
	u.adminPage(w, r, http.StatusOK, "admin_new", "New user", actor, "", d)
}

// adminFieldError is a form error about one input.
type adminFieldError struct{ field, msg string }

func (e *adminFieldError) Error() string { return e.msg }

// adminProfileFields reads and checks the email, display name and roles of a form.
func adminProfileFields(r *http.Request) (email, displayName string, roles []string, err error) {
	rawEmail := r.PostForm.Get("email")
	if strings.ContainsFunc(rawEmail, unicode.IsControl) {
		return "", "", nil, &adminFieldError{"email", msgAdminBadEmail}
	}
	if email = strings.TrimSpace(rawEmail); email != "" {
		if email, err = store.CanonicalEmail(email); err != nil {
			return "", "", nil, &adminFieldError{"email", msgAdminBadEmail}
		}
	}
	displayName = strings.TrimSpace(r.PostForm.Get("display_name"))
	if !ValidDisplayName(displayName) {
		return "", "", nil, &adminFieldError{"display_name", msgAdminBadDisplayName}
	}
	if roles, err = adminParseRoles(r.PostForm.Get("roles")); err != nil {
		return "", "", nil, err
	}
	return email, displayName, roles, nil
}

// ValidDisplayName reports whether s (already trimmed) may be a display
// name: valid UTF-8, at most 128 characters, one line, no bidi controls.
// The CLI checks names with it too.
func ValidDisplayName(s string) bool {
	return utf8.ValidString(s) && utf8.RuneCountInString(s) <= maxDisplayName && !strings.ContainsFunc(s, badNameRune)
}

// badNameRune is a character no display name may hold: a control
// character, a line or paragraph separator (a new line to mail clients
// and some apps), or a bidirectional mark, override or isolate, which
// makes a name read as another ("\u202enimda" shows as "admin"). The
// joiners that some scripts and emoji need stay allowed.
func badNameRune(r rune) bool {
	switch {
	case unicode.IsControl(r), r == '\u2028', r == '\u2029':
		return true
	case r == '\u061c', r == '\u200e', r == '\u200f', '\u202a' <= r && r <= '\u202e', '\u2066' <= r && r <= '\u2069':
		return true
	}
	return false
}

// adminParseRoles splits roles at commas and spaces and checks each.
func adminParseRoles(s string) ([]string, error) {
	fields := strings.FieldsFunc(s, func(c rune) bool { return c == ',' || unicode.IsSpace(c) })
	var roles []string
	for _, f := range fields {
		if !roleRE.MatchString(f) {
			return nil, &adminFieldError{"roles", msgAdminBadRoles}
		}
		if !slices.Contains(roles, f) {
			roles = append(roles, f)
		}
	}
	if len(roles) > maxRoles {
		return nil, &adminFieldError{"roles", msgAdminBadRoles}
	}
	slices.Sort(roles)
	return roles, nil
}

// adminMinPassword is the shortest password an admin may set.
func (u *UI) adminMinPassword() int { return u.cfg.passwordMinLength() }

// checkAdminPassword applies the password policy to a password an admin
// sets, as to one a user chooses.
func (u *UI) checkAdminPassword(pw, confirm, username, email string) error {
	err := checkNewPassword(pw, confirm, username, email, u.adminMinPassword())
	switch {
	case err == nil:
		return nil
	case errors.Is(err, msgPasswordMismatch):
		return &adminFieldError{"confirm", err.Error()}
	default:
		return &adminFieldError{"password", err.Error()}
	}
}

// adminHash hashes under the client address's limit and the hashing
// gate, like every form that hashes a password: a scripted admin session
// cannot hold every hashing slot and starve everyone's sign-ins.
func (u *UI) adminHash(r *http.Request, pw string) (string, error) {
	if err := u.allowIP(r); err != nil {
		return "", err
	}
	if err := u.guard.acquire(r.Context()); err != nil {
		return "", err
	}
	defer u.guard.release()
	return store.HashPassword(pw)
}

func (u *UI) adminCreate(w http.ResponseWriter, r *http.Request, actor *store.User) {
	f := r.PostForm
	form := adminForm{
		Username: truncate(f.Get("username"), 64), Email: truncate(f.Get("email"), 254),
		DisplayName: truncate(f.Get("display_name"), 4*maxDisplayName), Roles: truncate(f.Get("roles"), 512),
		Invite: f.Get("invite") != "",
	}
	d := &adminData{Form: form, Invite: u.invitationsEnabled(), MinPassword: u.adminMinPassword()}
	fail := func(status int, err error) {
		var fe *adminFieldError
		if errors.As(err, &fe) {
			d.Field = fe.field
		}
		u.adminPage(w, r, status, "admin_new", "New user", actor, err.Error(), d)
	}
	name, err := store.CanonicalUsername(f.Get("username"))
	if err != nil {
		fail(http.StatusBadRequest, &adminFieldError{"username", msgAdminBadUsername})
		return
	}
	email, displayName, roles, err := adminProfileFields(r)
	if err != nil {
		fail(http.StatusBadRequest, err)
		return
	}
	// An address an admin typed counts as verified (see store.User).
	x := store.User{Username: name, Email: email, EmailVerified: email != "", DisplayName: displayName, Roles: roles}
	switch {
	case form.Invite && !u.invitationsEnabled():
		fail(http.StatusBadRequest, &adminFieldError{"password", msgAdminNoMailer})
		return
	case form.Invite && email == "":
		fail(http.StatusBadRequest, &adminFieldError{"email", msgAdminInviteNeedsEmail})
		return
	case !form.Invite && f.Get("password") == "":
		fail(http.StatusBadRequest, &adminFieldError{"password", msgAdminNeedPassword})
		return
	case !form.Invite:
		if err := u.checkAdminPassword(f.Get("password"), f.Get("confirm"), name, email); err != nil {
			fail(http.StatusBadRequest, err)
			return
		}
	}
	if _, err := u.db.User(name); err == nil {
		fail(http.StatusConflict, &adminFieldError{"username", msgAdminUserExists})
		return
	}
	if !form.Invite {
		if x.PasswordHash, err = u.adminHash(r, f.Get("password")); err != nil {
			u.adminFailure(w, r, "creating a user", err)
			return
		}
		x.PasswordChanged = u.now()
	}
	if err := u.db.CreateUser(x); errors.Is(err, store.ErrExists) {
		if _, err := u.db.User(name); err == nil {
			fail(http.StatusConflict, &adminFieldError{"username", msgAdminUserExists})
		} else {
			fail(http.StatusConflict, &adminFieldError{"email", msgAdminEmailExists})
		}
		return
	} else if err != nil {
		u.adminFailure(w, r, "creating a user", err)
		return
	}
	u.adminAudit(r, "admin_user_created", actor, name, "roles", strings.Join(roles, ","))
	done := "created"
	if form.Invite {
		if err := u.sendInvitation(r, x); err != nil {
			u.log.Error("admin: sending an invitation", "user", name, "err", err)
			done = "uninvited"
		} else {
			u.adminAudit(r, "admin_user_invited", actor, name)
			done = "invited"
		}
	}
	u.adminSeeOther(w, r, adminUserURL(name)+"?done="+done)
}

// adminFailure answers a failure: a rate limit's 429, the hashing gate's
// 503, or 500.
func (u *UI) adminFailure(w http.ResponseWriter, r *http.Request, what string, err error) {
	var le *limitError
	if errors.As(err, &le) {
		u.log.Info("audit", "event", "admin_rate_limited", "ip", u.clientAddr(r))
		tooMany(w, le)
		u.Error(w, r, http.StatusTooManyRequests)
		return
	}
	if errors.Is(err, ErrBusy) {
		w.Header().Set("Retry-After", "1")
		u.Error(w, r, http.StatusServiceUnavailable)
		return
	}
	u.log.Error("admin: "+what, "err", err)
	u.Error(w, r, http.StatusInternalServerError)
}

// adminTarget loads the user a console page is about; false (and a 404 page)
// when there is none.
func (u *UI) adminTarget(w http.ResponseWriter, r *http.Request) (store.User, bool) {
	x, err := u.db.User(r.PathValue("name"))
	if errors.Is(err, store.ErrNotFound) {
		u.Error(w, r, http.StatusNotFound)
		return x, false
	} else if err != nil {
		u.adminFailure(w, r, "reading a user", err)
		return x, false
	}
	return x, true
}

// adminUserView renders a user's page, with the notice, or an error about a
// form on it.
func (u *UI) adminUserView(w http.ResponseWriter, r *http.Request, status int, actor *store.User, x store.User, errMsg, field string, form *adminForm) {
	d := &adminData{Target: u.adminRowOf(x), Self: x.Username == actor.Username, Field: field, MinPassword: u.adminMinPassword(), Invite: u.invitationsEnabled()}
	d.Form = adminForm{Email: x.Email, DisplayName: x.DisplayName, Roles: strings.Join(x.Roles, ", ")}
	if form != nil {
		d.Form = *form
	}
	if sessions, err := u.db.UserSessions(x.Username); err == nil {
		d.Sessions = len(sessions)
	}
	if errMsg == "" && r.Method == http.MethodGet {
		d.Notice = adminNotice(r.URL.Query().Get("done"), x.Username)
	}
	u.adminPage(w, r, status, "admin_user", x.Username, actor, errMsg, d)
}

func (u *UI) adminUserPage(w http.ResponseWriter, r *http.Request, actor *store.User) {
	if x, ok := u.adminTarget(w, r); ok {
		u.adminUserView(w, r, http.StatusOK, actor, x, "", "", nil)
	}
}

// lastAdmin reports whether x is the last active admin, whom the store
// will not demote, disable or delete: the delete page says so up front.
func (u *UI) lastAdmin(x store.User) (bool, error) {
	if !isActiveAdmin(&x) {
		return false, nil
	}
	all, err := u.db.Users()
	if err != nil {
		return false, err
	}
	for _, o := range all {
		if o.Username != x.Username && isActiveAdmin(&o) {
			return false, nil
		}
	}
	return true, nil
}

func (u *UI) adminUpdate(w http.ResponseWriter, r *http.Request, actor *store.User) {
	x, ok := u.adminTarget(w, r)
	if !ok {
		return
	}
	form := &adminForm{Email: truncate(r.PostForm.Get("email"), 254),
		DisplayName: truncate(r.PostForm.Get("display_name"), 4*maxDisplayName), Roles: truncate(r.PostForm.Get("roles"), 512)}
	email, displayName, roles, err := adminProfileFields(r)
	var fe *adminFieldError
	if errors.As(err, &fe) {
		u.adminUserView(w, r, http.StatusBadRequest, actor, x, fe.msg, fe.field, form)
		return
	}
	next, err := u.db.UpdateUser(x.Username, func(y *store.User) error {
		if y.Email != email {
			// An address an admin typed counts as verified (see store.User).
			y.EmailVerified = email != ""
		}
		y.Email, y.DisplayName, y.Roles = email, displayName, roles
		return nil
	})
	switch {
	case errors.Is(err, store.ErrExists):
		u.adminUserView(w, r, http.StatusConflict, actor, x, msgAdminEmailExists, "email", form)
		return
	case errors.Is(err, store.ErrLastAdmin):
		u.adminUserView(w, r, http.StatusConflict, actor, x, msgAdminLastAdmin, "roles", form)
		return
	case errors.Is(err, store.ErrNotFound):
		u.Error(w, r, http.StatusNotFound)
		return
	case err != nil:
		u.adminFailure(w, r, "updating a user", err)
		return
	}
	var changed []string
	if next.Email != x.Email {
		changed = append(changed, "email")
	}
	if next.DisplayName != x.DisplayName {
		changed = append(changed, "display_name")
	}
	if !slices.Equal(next.Roles, x.Roles) {
		changed = append(changed, "roles")
	}
	if len(changed) > 0 {
		u.adminAudit(r, "admin_user_updated", actor, x.Username, "changed", strings.Join(changed, ","),
			"roles", strings.Join(next.Roles, ","), "previous_roles", strings.Join(x.Roles, ","))
	}
	u.adminSeeOther(w, r, adminUserURL(x.Username)+"?done=updated")
}

// adminAction runs one of the buttons of a user's page.
func (u *UI) adminAction(w http.ResponseWriter, r *http.Request, actor *store.User) {
	x, ok := u.adminTarget(w, r)
	if !ok {
		return
	}
	action := r.PathValue("action")
	refuse := func(status int, msg, field string) { u.adminUserView(w, r, status, actor, x, msg, field, nil) }
	update := func(fn func(y *store.User)) bool {
		_, err := u.db.UpdateUser(x.Username, func(y *store.User) error { fn(y); return nil })
		switch {
		case errors.Is(err, store.ErrLastAdmin):
			refuse(http.StatusConflict, msgAdminLastAdmin, "")
		case errors.Is(err, store.ErrNotFound):
			u.Error(w, r, http.StatusNotFound)
		case err != nil:
			u.adminFailure(w, r, action, err)
		}
		return err == nil
	}
	// Ending the acting admin's own sessions keeps the one they are using.
	keep := ""
	if x.Username == actor.Username {
		keep = u.sessionID(r)
	}
	switch action {
	case "enable":
		if !update(func(y *store.User) { y.Disabled = false }) {
			return
		}
		u.adminAudit(r, "admin_user_enabled", actor, x.Username)
		u.adminSeeOther(w, r, adminUserURL(x.Username)+"?done=enabled")
	case "disable":
		if !update(func(y *store.User) { y.Disabled = true }) {
			return
		}
		// Authenticate already refuses a disabled user; ending the sessions
		// too means enabling the account again does not revive them.
		n, err := u.db.DeleteUserSessions(x.Username, "")
		if err != nil {
			u.log.Error("admin: ending a disabled user's sessions", "user", x.Username, "err", err)
		}
		u.adminAudit(r, "admin_user_disabled", actor, x.Username, "sessions_ended", n)
		u.adminSeeOther(w, r, adminUserURL(x.Username)+"?done=disabled")
	case "unlock":
		if !update(func(y *store.User) { y.FailedLogins, y.LastFailure, y.LockedUntil = 0, time.Time{}, time.Time{} }) {
			return
		}
		u.guard.succeededUser(r.Context(), userKey(&x, ""))
		u.adminAudit(r, "admin_user_unlocked", actor, x.Username)
		u.adminSeeOther(w, r, adminUserURL(x.Username)+"?done=unlocked")
	case "password":
		pw := r.PostForm.Get("password")
		if err := u.checkAdminPassword(pw, r.PostForm.Get("confirm"), x.Username, x.Email); err != nil {
			field := "password"
			var fe *adminFieldError
			if errors.As(err, &fe) {
				field = fe.field
			}
			refuse(http.StatusBadRequest, err.Error(), field)
			return
		}
		hash, err := u.adminHash(r, pw)
		if err != nil {
			u.adminFailure(w, r, "hashing a password", err)
			return
		}
		now := u.now()
		if !update(func(y *store.User) {
			y.PasswordHash, y.PasswordChanged = hash, now
			y.FailedLogins, y.LastFailure, y.LockedUntil = 0, time.Time{}, time.Time{}
		}) {
			return
		}
		n, err := u.db.DeleteUserSessions(x.Username, keep)
		if err != nil {
			u.adminFailure(w, r, "ending sessions after a password reset", err)
			return
		}
		u.adminAudit(r, "admin_password_reset", actor, x.Username, "sessions_ended", n)
		u.adminSeeOther(w, r, adminUserURL(x.Username)+"?done=password")
	case "sessions":
		n, err := u.db.DeleteUserSessions(x.Username, keep)
		if err != nil {
			u.adminFailure(w, r, "ending sessions", err)
			return
		}
		u.adminAudit(r, "admin_sessions_ended", actor, x.Username, "sessions_ended", n)
		u.adminSeeOther(w, r, adminUserURL(x.Username)+"?done=sessions")
	case "invite":
		// A new invitation for a user who never set a password (the
		// first link expired or went astray); it replaces earlier links.
		if !u.invitationsEnabled() || x.PasswordHash != "" || x.Email == "" || x.Disabled {
			refuse(http.StatusConflict, msgAdminNoInvite, "")
			return
		}
		if err := u.allowIP(r); err != nil {
			u.adminFailure(w, r, "sending an invitation", err)
			return
		}
		if err := u.sendInvitation(r, x); err != nil {
			u.log.Error("admin: the invitation was not sent", "user", x.Username, "err", err)
			refuse(http.StatusServiceUnavailable, msgMailFailed, "")
			return
		}
		u.adminAudit(r, "admin_user_invited", actor, x.Username, "again", true)
		u.adminSeeOther(w, r, adminUserURL(x.Username)+"?done=reinvited")
	case "approve":
		if !update(func(y *store.User) { y.Pending = false }) {
			return
		}
		if x.Pending {
			u.adminAudit(r, "admin_user_approved", actor, x.Username)
		}
		u.adminSeeOther(w, r, adminUserURL(x.Username)+"?done=approved")
	default:
		u.Error(w, r, http.StatusNotFound)
	}
}

func (u *UI) adminDeletePage(w http.ResponseWriter, r *http.Request, actor *store.User) {
	x, ok := u.adminTarget(w, r)
	if !ok {
		return
	}
	msg := ""
	if last, err := u.lastAdmin(x); err != nil {
		u.adminFailure(w, r, "counting admins", err)
		return
	} else if last {
		msg = msgAdminLastAdmin
	}
	d := &adminData{Target: u.adminRowOf(x), Self: x.Username == actor.Username}
	u.adminPage(w, r, http.StatusOK, "admin_delete", "Delete "+x.Username+"?", actor, msg, d)
}

func (u *UI) adminDelete(w http.ResponseWriter, r *http.Request, actor *store.User) {
	x, ok := u.adminTarget(w, r)
	if !ok {
		return
	}
	d := &adminData{Target: u.adminRowOf(x), Self: x.Username == actor.Username}
	err := u.db.DeleteUser(x.Username)
	switch {
	case errors.Is(err, store.ErrLastAdmin):
		u.adminPage(w, r, http.StatusConflict, "admin_delete", "Delete "+x.Username+"?", actor, msgAdminLastAdmin, d)
		return
	case errors.Is(err, store.ErrNotFound):
		u.Error(w, r, http.StatusNotFound)
		return
	case err != nil:
		u.adminFailure(w, r, "deleting a user", err)
		return
	}
	u.adminAudit(r, "admin_user_deleted", actor, x.Username)
	u.adminSeeOther(w, r, adminPath+"?done=deleted&user="+url.QueryEscape(x.Username))
}
