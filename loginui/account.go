package loginui

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/sessions"

	"github.com/gatehouse-auth/gatehouse/store"
)

// accountPath is the signed-in user's own page: who they are, their
// password and their sessions (SPEC §7, §9).
const accountPath = "/.gatehouse/account"

// Messages the account page shows.
const (
	msgCurrentPasswordWrong = "Your current password is not correct."
	msgCurrentPasswordEmpty = "Enter your current password."
	msgSessionGone          = "That session has already ended."
	msgSessionsUnavailable  = "Your sessions cannot be listed right now."
	msgAccountAuthRequired  = `{"error":"authentication required"}`
)

// accountNotice is the success line for a ?done= value, "" for any other.
func accountNotice(done string) string {
	switch done {
	case "password":
		return "Your password has been changed. Every other session has been signed out."
	case "session":
		return "The session has ended."
	case "others":
		return "Every other session has ended."
	case "verify":
		return "We sent a new confirmation link to your email address."
	}
	return ""
}

// accountPage is what the account page shows beyond the common page data.
type accountPage struct {
	Notice        string
	PasswordError string
	SessionsError string
	VerifyOffer   bool   // the address is not confirmed and mail can confirm it
	VerifyError   string // about the "send a new link" form
	MinLength     int
	Sessions      []sessionRow
}

// sessionRow is one of the user's sessions in the account page's list.
type sessionRow struct {
	Handle      string // names the session in forms; never its cookie id
	Device      string
	Address     string
	Started     string
	StartedISO  string
	LastSeen    string
	LastSeenISO string
	Current     bool
}

// accountRoutes adds the account page and its forms to mux; post wraps a
// form handler in the cross-origin check and the body limit.
func (u *UI) accountRoutes(mux *http.ServeMux, post func(http.HandlerFunc) http.Handler) {
	// Embedded and covered by tests: a parse error is a build mistake.
	u.pages["account"] = template.Must(template.ParseFS(templateFS, "templates/layout.html", "templates/account.html"))
	mux.HandleFunc("GET "+accountPath, u.account)
	mux.Handle("POST "+accountPath+"/password", post(u.changePassword))
	mux.Handle("POST "+accountPath+"/sessions/end", post(u.endSession))
	mux.Handle("POST "+accountPath+"/sessions/end-others", post(u.endOtherSessions))
}

// accountUser returns the signed-in user and their session id. For an
// anonymous caller it answers as the gateway does anywhere (browsers to
// the sign-in page with a way back, API clients 401) and returns nil.
func (u *UI) accountUser(w http.ResponseWriter, r *http.Request) (*store.User, string) {
	user, err := u.Authenticate(r)
	if err != nil {
		u.log.Error("account: checking the session", "err", err)
		u.Error(w, r, http.StatusInternalServerError)
		return nil, ""
	}
	if user != nil {
		if id := u.sessionID(r); id != "" {
			return user, id
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	if strings.Contains(strings.Join(r.Header.Values("Accept"), ","), "text/html") {
		status := http.StatusFound
		if r.Method == http.MethodPost {
			status = http.StatusSeeOther // the sign-in page is fetched with GET
		}
		http.Redirect(w, r, "/.gatehouse/login?rd="+url.QueryEscape(accountPath), status)
		return nil, ""
	}
	w.Header().Set("WWW-Authenticate", `Gatehouse realm="gatehouse", login="/.gatehouse/login"`)
	writeJSON(w, http.StatusUnauthorized, msgAccountAuthRequired)
	return nil, ""
}

func (u *UI) account(w http.ResponseWriter, r *http.Request) {
	user, sid := u.accountUser(w, r)
	if user == nil {
		return
	}
	u.renderAccount(w, r, http.StatusOK, user, sid, accountPage{Notice: accountNotice(r.URL.Query().Get("done"))})
}

// renderAccount shows the account page with the user's live sessions.
func (u *UI) renderAccount(w http.ResponseWriter, r *http.Request, status int, user *store.User, sid string, a accountPage) {
	a.MinLength = u.cfg.passwordMinLength()
	a.VerifyOffer = u.mailer != nil && user.Email != "" && !user.EmailVerified
	list, err := u.db.UserSessions(user.Username)
	if err != nil {
		u.log.Error("account: listing sessions", "user", user.Username, "err", err)
		a.SessionsError = msgSessionsUnavailable
	}
	current := sessionHandle(sid)
	for _, s := range list {
		a.Sessions = append(a.Sessions, sessionRow{
			Handle: s.ID, Device: deviceName(s.UserAgent), Address: s.RemoteAddr,
			Started: displayTime(s.Created), StartedISO: s.Created.UTC().Format(time.RFC3339),
			LastSeen: displayTime(s.LastSeen), LastSeenISO: s.LastSeen.UTC().Format(time.RFC3339),
			Current: s.ID == current,
		})
	}
	u.render(w, status, "account", page{Heading: "Your account", User: user, CSRF: u.csrfToken(w, r), Account: &a})
}

func displayTime(t time.Time) string { return t.UTC().Format("2 Jan 2006, 15:04 UTC") }

// sessionHandle is the handle store.UserSessions gives the session with
// this id: the first 16 bytes of sha256(id), in hex. It marks "this
// device" in the list; a test pins it to the store's own.
func sessionHandle(id string) string {
	if id == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

// changePassword checks the current password under the sign-in guard
// (rate limits, lockout, hashing gate), applies the password policy, stores
// a new argon2id hash and ends every other session of the user (SPEC §7).
func (u *UI) changePassword(w http.ResponseWriter, r *http.Request) {
	user, sid := u.accountUser(w, r)
	if user == nil {
		return
	}
	ip := u.clientAddr(r)
	again := func(status int, msg string) {
		u.renderAccount(w, r, status, user, sid, accountPage{PasswordError: msg})
	}
	if !u.csrfOK(r) {
		again(http.StatusForbidden, msgFormExpired)
		return
	}
	current, pw, confirm := r.PostForm.Get("current"), r.PostForm.Get("new"), r.PostForm.Get("confirm")
	if current == "" {
		again(http.StatusUnprocessableEntity, msgCurrentPasswordEmpty)
		return
	}
	// The policy first: a refused new password costs no hashing and no
	// attempt against the account.
	if err := checkNewPassword(pw, confirm, user.Username, user.Email, u.cfg.passwordMinLength()); err != nil {
		var pe passwordError
		if !errors.As(err, &pe) {
			u.log.Error("account: password policy", "err", err)
			u.Error(w, r, http.StatusInternalServerError)
			return
		}
		again(http.StatusUnprocessableEntity, pe.Error())
		return
	}
	checked, err := u.guardedCheck(r, user.Username, current)
	var le *limitError
	switch {
	case errors.As(err, &le):
		u.log.Info("audit", "event", "password_change_rate_limited", "user", user.Username, "ip", ip)
		retry := max(1, int(time.Until(le.reset).Seconds()+0.999))
		w.Header().Set("Retry-After", strconv.Itoa(retry))
		again(http.StatusTooManyRequests, fmt.Sprintf(msgTooMany, retry))
		return
	case errors.Is(err, ErrBusy):
		u.log.Warn("password change refused: every hashing slot is busy", "ip", ip)
		w.Header().Set("Retry-After", "1")
		u.Error(w, r, http.StatusServiceUnavailable)
		return
	case errors.Is(err, ErrSignInFailed):
		u.log.Info("audit", "event", "password_change_failed", "user", user.Username, "ip", ip)
		again(http.StatusUnauthorized, msgCurrentPasswordWrong)
		return
	case err != nil:
		u.log.Error("account: checking the current password", "user", user.Username, "err", err)
		u.Error(w, r, http.StatusInternalServerError)
		return
	}
	// The new hash takes a hashing slot too, so password changes cannot
	// get round the gate that keeps CPU for proxied traffic.
	if err := u.guard.acquire(r.Context()); err != nil {
		w.Header().Set("Retry-After", "1")
		u.Error(w, r, http.StatusServiceUnavailable)
		return
	}
	hash, err := store.HashPassword(pw)
	u.guard.release()
	if err != nil {
		u.log.Error("account: hashing the new password", "user", user.Username, "err", err)
		u.Error(w, r, http.StatusInternalServerError)
		return
	}
	now := u.now()
	_, err = u.db.UpdateUser(user.Username, func(x *store.User) error {
		x.PasswordHash = hash
		x.PasswordChanged = now
		// The check stamped LastSignIn; confirming a password is not a sign-in.
		if x.LastSignIn.Equal(checked.LastSignIn) {
			x.LastSignIn = user.LastSignIn
		}
		return nil
	})
	if err != nil {
		u.log.Error("account: storing the new password", "user", user.Username, "err", err)
		u.Error(w, r, http.StatusInternalServerError)
		return
	}
	ended, err := u.db.DeleteUserSessions(user.Username, sid)
	if err != nil {
		// The password did change; say so in the log, not with a false success.
		u.log.Error("account: ending the other sessions after a password change", "user", user.Username, "err", err)
		u.Error(w, r, http.StatusInternalServerError)
		return
	}
	u.log.Info("audit", "event", "password_changed", "user", user.Username, "ip", ip, "sessions_ended", ended)
	u.securityHeaders(w.Header())
	http.Redirect(w, r, accountPath+"?done=password", http.StatusSeeOther)
}

// endSession ends one of the user's own sessions, named by its handle.
// A handle that is not one of theirs ends nothing and gets 404. Ending
// the session of this very browser signs it out.
func (u *UI) endSession(w http.ResponseWriter, r *http.Request) {
	user, sid := u.accountUser(w, r)
	if user == nil {
		return
	}
	ip := u.clientAddr(r)
	if !u.csrfOK(r) {
		u.renderAccount(w, r, http.StatusForbidden, user, sid, accountPage{SessionsError: msgFormExpired})
		return
	}
	h := strings.TrimSpace(r.PostForm.Get("session"))
	err := store.ErrNotFound // no handle, or one longer than any handle
	if h != "" && len(h) <= 64 {
		err = u.db.DeleteSessionByHandle(user.Username, h)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Not a live session of this user: another user's, an ended one or
		// none. Nothing is ended, and the answer does not say which.
		u.log.Info("audit", "event", "session_end_refused", "user", user.Username, "ip", ip, "session", truncate(h, 64))
		u.renderAccount(w, r, http.StatusNotFound, user, sid, accountPage{SessionsError: msgSessionGone})
		return
	case err != nil:
		u.log.Error("account: ending a session", "user", user.Username, "err", err)
		u.Error(w, r, http.StatusInternalServerError)
		return
	}
	current := h == sessionHandle(sid)
	u.log.Info("audit", "event", "session_ended", "user", user.Username, "ip", ip, "session", h, "current", current)
	if !current {
		u.securityHeaders(w.Header())
		http.Redirect(w, r, accountPath+"?done=session", http.StatusSeeOther)
		return
	}
	// This browser's own session: its record is gone; drop the cookie too.
	sess := sessions.NewSession(&sessionStore{ui: u, r: r}, u.cookie)
	sess.Options = u.cookieOptions(false)
	sess.Options.MaxAge = -1
	if err := sess.Save(r, w); err != nil {
		u.log.Error("account: signing out", "user", user.Username, "err", err)
		u.Error(w, r, http.StatusInternalServerError)
		return
	}
	u.log.Info("audit", "event", "signout", "user", user.Username, "ip", ip)
	u.render(w, http.StatusOK, "signedout", page{Heading: "Signed out"})
}

// endOtherSessions ends every session of the user but this browser's.
func (u *UI) endOtherSessions(w http.ResponseWriter, r *http.Request) {
	user, sid := u.accountUser(w, r)
	if user == nil {
		return
	}
	if !u.csrfOK(r) {
		u.renderAccount(w, r, http.StatusForbidden, user, sid, accountPage{SessionsError: msgFormExpired})
		return
	}
	n, err := u.db.DeleteUserSessions(user.Username, sid)
	if err != nil {
		u.log.Error("account: ending the other sessions", "user", user.Username, "err", err)
		u.Error(w, r, http.StatusInternalServerError)
		return
	}
	u.log.Info("audit", "event", "sessions_ended", "user", user.Username, "ip", u.clientAddr(r), "count", n)
	u.securityHeaders(w.Header())
	http.Redirect(w, r, accountPath+"?done=others", http.StatusSeeOther)
}

// deviceName sums up a User-Agent as "Browser on OS" ("Chrome on Linux"),
// for people to recognise their devices; it is no security check, since
// a client can send anything.
func deviceName(ua string) string {
	has := func(s string) bool { return strings.Contains(ua, s) }
	browser := ""
	switch {
	case has("Edg/") || has("EdgA/") || has("EdgiOS/"):
		browser = "Edge"
	case has("OPR/") || has("Opera"):
		browser = "Opera"
	case has("SamsungBrowser/"):
		browser = "Samsung Internet"
	case has("Firefox/") || has("FxiOS/"):
		browser = "Firefox"
	case has("Chromium/"):
		browser = "Chromium"
	case has("CriOS/") || has("Chrome/"):
		browser = "Chrome"
	case has("Safari/") && has("Version/"):
		browser = "Safari"
	case strings.HasPrefix(ua, "curl/"):
		browser = "curl"
	}
	system := ""
	switch {
	case has("iPhone") || has("iPod"):
		system = "iPhone"
	case has("iPad"):
		system = "iPad"
	case has("Android"):
		system = "Android"
	case has("CrOS"):
		system = "ChromeOS"
	case has("Windows"):
		system = "Windows"
	case has("Macintosh") || has("Mac OS X"):
		system = "macOS"
	case has("Linux"):
		system = "Linux"
	}
	switch {
	case browser != "" && system != "":
		return browser + " on " + system
	case browser != "":
		return browser
	case system != "":
		return "A browser on " + system
	}
	return "Unknown device"
}
