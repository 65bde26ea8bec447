package loginui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/sessions"

	"github.com/gatehouse-auth/gatehouse/store"
)

// ErrSignInFailed is every failed sign-in: unknown user, wrong password,
// disabled or locked account. Callers and pages never learn which.
var ErrSignInFailed = errors.New("loginui: sign-in failed")

// errLockedOut is the ErrSignInFailed of a locked account, whatever the
// password: only the metrics tell it apart.
var errLockedOut = fmt.Errorf("%w (the account is locked)", ErrSignInFailed)

// Messages a sign-in form shows.
const (
	msgSignInFailed = "Incorrect username or password."
	msgTooMany      = "Too many attempts. Please wait %d seconds and try again."
	msgFormExpired  = "This form has expired. Please try again."
)

// Input bounds: longer values fail like a wrong password, after the same
// hashing work.
const (
	maxLogin    = 256
	maxPassword = 1024
)

// wantsHTML: the client is a browser (its Accept names HTML, or it names nothing).
func wantsHTML(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return a == "" || strings.Contains(a, "text/html")
}

// writeJSON answers an API client.
func writeJSON(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body + "\n"))
}

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	rd := r.URL.Query().Get("rd")
	u.render(w, http.StatusOK, "login", page{
		Heading: "Sign in", CSRF: u.csrfToken(w, r), RD: rd, Host: hostOf(r), Remember: u.cfg.RememberMe > 0,
	})
}

func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	login, password, rd := r.PostForm.Get("username"), r.PostForm.Get("password"), r.PostForm.Get("rd")
	ip := u.clientAddr(r)
	formPage := func(status int, msg string) {
		u.render(w, status, "login", page{
			Heading: "Sign in", CSRF: u.csrfToken(w, r), RD: rd, Host: hostOf(r), Remember: u.cfg.RememberMe > 0,
			Error: msg, Username: truncate(login, maxLogin),
		})
	}
	if !u.csrfOK(r) {
		// The form again, with a token that matches this browser's cookie
		// (a new one when it had none): a stale tab costs one more click.
		formPage(http.StatusForbidden, msgFormExpired)
		return
	}
	user, err := u.guardedCheck(r, login, password)
	u.countSignIn(err)
	var le *limitError
	switch {
	case errors.As(err, &le):
		u.log.Info("audit", "event", "signin_rate_limited", "user", truncate(login, 64), "ip", ip)
		// The limiter keeps wall-clock time, whatever clock the UI was given.
		retry := max(1, int(time.Until(le.reset).Seconds()+0.999))
		w.Header().Set("Retry-After", strconv.Itoa(retry))
		if !wantsHTML(r) {
			writeJSON(w, http.StatusTooManyRequests, `{"error":"too many attempts"}`)
			return
		}
		formPage(http.StatusTooManyRequests, fmt.Sprintf(msgTooMany, retry))
		return
	case errors.Is(err, ErrBusy):
		u.log.Warn("sign-in refused: every hashing slot is busy", "ip", ip)
		w.Header().Set("Retry-After", "1")
		if !wantsHTML(r) {
			writeJSON(w, http.StatusServiceUnavailable, `{"error":"busy, try again"}`)
			return
		}
		u.Error(w, r, http.StatusServiceUnavailable)
		return
	case errors.Is(err, ErrSignInFailed):
		u.log.Info("audit", "event", "signin_failed", "user", truncate(login, 64), "ip", ip)
		if !wantsHTML(r) {
			writeJSON(w, http.StatusUnauthorized, `{"error":"incorrect username or password"}`)
			return
		}
		formPage(http.StatusUnauthorized, msgSignInFailed)
		return
	case err != nil:
		u.log.Error("sign-in", "err", err)
		u.Error(w, r, http.StatusInternalServerError)
		return
	}
	// A new session id at every sign-in, whatever cookie came in: a
	// session id planted before sign-in (fixation) is dropped with its record.
	if old := u.sessionID(r); old != "" {
		if err := u.db.DeleteSession(old); err != nil {
			u.log.Error("sign-in: dropping the previous session", "err", err)
		}
	}
	store := &sessionStore{ui: u, r: r}
	sess := sessions.NewSession(store, u.cookie)
	sess.Options = u.cookieOptions(false)
	sess.Values[valueUser] = user.Username
	sess.Values[valueRemember] = u.cfg.RememberMe > 0 && r.PostForm.Get("remember") != ""
	if err := sess.Save(r, w); err != nil {
		u.log.Error("sign-in: saving the session", "err", err)
		u.Error(w, r, http.StatusInternalServerError)
		return
	}
	u.log.Info("audit", "event", "signin", "user", user.Username, "ip", ip)
	u.securityHeaders(w.Header())
	http.Redirect(w, r, SafeRedirect(rd, u.isAppHost), http.StatusSeeOther)
}

// guardedCheck checks a password under every protection: the per-address
// limit, the per-account limit, the lockout and the hashing gate. Every
// form that checks a password goes through it.
func (u *UI) guardedCheck(r *http.Request, login, password string) (store.User, error) {
	ctx := r.Context()
	var ip netip.Addr
	if u.clientIP != nil {
		ip = u.clientIP(r)
	}
	if err := u.guard.allowIP(ctx, ip); err != nil {
		return store.User{}, err
	}
	var known *store.User
	if login != "" && len(login) <= maxLogin {
		if found, err := u.db.UserByLogin(login); err == nil {
			known = &found
		} else if !errors.Is(err, store.ErrNotFound) {
			return store.User{}, err
		}
	}
	key := userKey(known, login)
	if err := u.guard.allowUser(ctx, key); err != nil {
		return store.User{}, err
	}
	if err := u.guard.acquire(ctx); err != nil {
		return store.User{}, err
	}
	user, err := u.checkPassword(ctx, known, password)
	u.guard.release()
	switch {
	case errors.Is(err, ErrSignInFailed):
		u.guard.failedUser(ctx, key)
		if known != nil {
			u.recordFailure(known.Username, u.clientAddr(r))
		}
	case err == nil:
		u.guard.succeededUser(ctx, key)
	}
	return user, err
}

// checkPassword verifies password for user (nil: no such user). Every
// failure is ErrSignInFailed, and every path costs one password hash, so
// neither the answer nor its timing tells whether the account exists, is
// disabled, is pending approval or is locked.
func (u *UI) checkPassword(_ context.Context, user *store.User, password string) (store.User, error) {
	// An invited user who has not chosen a password yet has no hash.
	if user == nil || user.PasswordHash == "" || len(password) > maxPassword || password == "" {
		store.VerifyDummy(password[:min(len(password), maxPassword)])
		return store.User{}, ErrSignInFailed
	}
	ok, rehash, err := store.VerifyPassword(user.PasswordHash, password)
	if errors.Is(err, store.ErrUnknownHash) {
		store.VerifyDummy(password)
		u.log.Warn("a user's password hash is unreadable; reset their password", "user", user.Username)
		return store.User{}, ErrSignInFailed
	} else if err != nil {
		return store.User{}, err
	}
	now := u.now()
	if user.LockedUntil.After(now) {
		return store.User{}, errLockedOut
	}
	if !ok || user.Disabled || user.Pending {
		return store.User{}, ErrSignInFailed
	}
	var newHash string
	if rehash {
		if newHash, err = store.HashPassword(password); err != nil {
			return store.User{}, err
		}
	}
	return u.db.UpdateUser(user.Username, func(x *store.User) error {
		x.LastSignIn = now
		x.FailedLogins, x.LockedUntil = 0, time.Time{}
		if newHash != "" {
			x.PasswordHash = newHash
		}
		return nil
	})
}

// recordFailure counts a failed sign-in against an account and locks it
// after LockoutAttempts failures within LockoutWindow. The count lives in
// the store, so a restart does not reset it.
func (u *UI) recordFailure(username, ip string) {
	l := u.guard.limits
	now := u.now()
	locked := false
	_, err := u.db.UpdateUser(username, func(x *store.User) error {
		if now.Sub(x.LastFailure) > l.LockoutWindow {
			x.FailedLogins = 0
		}
		x.FailedLogins++
		x.LastFailure = now
		if l.LockoutAttempts > 0 && x.FailedLogins >= l.LockoutAttempts && !x.LockedUntil.After(now) {
			x.LockedUntil = now.Add(l.LockoutDuration)
			locked = true
		}
		return nil
	})
	if err != nil {
		u.log.Error("recording a failed sign-in", "user", username, "err", err)
		return
	}
	if locked {
		u.log.Warn("audit", "event", "lockout", "user", username, "ip", ip,
			"until", now.Add(l.LockoutDuration).UTC().Format(time.RFC3339))
	}
}

func (u *UI) logoutPage(w http.ResponseWriter, r *http.Request) {
	user, _ := u.Authenticate(r)
	u.render(w, http.StatusOK, "logout", page{Heading: "Sign out", User: user, CSRF: u.csrfToken(w, r)})
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	user, _ := u.Authenticate(r)
	if !u.csrfOK(r) {
		u.render(w, http.StatusForbidden, "logout", page{Heading: "Sign out", User: user, CSRF: u.csrfToken(w, r), Error: msgFormExpired})
		return
	}
	store := &sessionStore{ui: u, r: r}
	sess := sessions.NewSession(store, u.cookie)
	sess.ID = u.sessionID(r)
	sess.Options = u.cookieOptions(false)
	sess.Options.MaxAge = -1
	if err := sess.Save(r, w); err != nil {
		u.log.Error("sign-out", "err", err)
		u.Error(w, r, http.StatusInternalServerError)
		return
	}
	if user != nil {
		u.log.Info("audit", "event", "signout", "user", user.Username, "ip", u.clientAddr(r))
	}
	u.render(w, http.StatusOK, "signedout", page{Heading: "Signed out"})
}
