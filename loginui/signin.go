package loginui

import (
	"context"
	"errors"
	"net/http"

	"github.com/gorilla/sessions"

	"github.com/gatehouse-auth/gatehouse/store"
)

// ErrSignInFailed is every failed sign-in: unknown user, wrong password,
// disabled account. Callers and pages never learn which.
var ErrSignInFailed = errors.New("loginui: sign-in failed")

// msgSignInFailed is the one message a failed sign-in shows.
const msgSignInFailed = "Incorrect username or password."

// Input bounds: longer values fail like a wrong password, after the same
// hashing work.
const (
	maxLogin    = 256
	maxPassword = 1024
)

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	rd := r.URL.Query().Get("rd")
	u.render(w, http.StatusOK, "login", page{
		Heading: "Sign in", CSRF: u.csrfToken(w, r), RD: rd, Host: hostOf(r), Remember: u.cfg.RememberMe > 0,
	})
}

func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	if !u.csrfOK(r) {
		u.Error(w, r, http.StatusForbidden)
		return
	}
	login, password, rd := r.PostForm.Get("username"), r.PostForm.Get("password"), r.PostForm.Get("rd")
	ip := u.clientAddr(r)
	user, err := u.checkPassword(r.Context(), login, password)
	if err != nil {
		if !errors.Is(err, ErrSignInFailed) {
			u.log.Error("sign-in", "err", err)
			u.Error(w, r, http.StatusInternalServerError)
			return
		}
		u.log.Info("audit", "event", "signin_failed", "login", truncate(login, 64), "ip", ip)
		u.render(w, http.StatusUnauthorized, "login", page{
			Heading: "Sign in", CSRF: u.csrfToken(w, r), RD: rd, Host: hostOf(r), Remember: u.cfg.RememberMe > 0,
			Error: msgSignInFailed, Username: truncate(login, maxLogin),
		})
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
	http.Redirect(w, r, SafeRedirect(rd, u.isAppHost), http.StatusSeeOther)
}

// checkPassword verifies a sign-in. Every failure is ErrSignInFailed, and
// every path costs one password hash, so neither the answer nor its timing
// tells whether the account exists.
func (u *UI) checkPassword(_ context.Context, login, password string) (store.User, error) {
	if len(login) > maxLogin || len(password) > maxPassword || login == "" || password == "" {
		store.VerifyDummy(password[:min(len(password), maxPassword)])
		return store.User{}, ErrSignInFailed
	}
	user, err := u.db.UserByLogin(login)
	if errors.Is(err, store.ErrNotFound) {
		store.VerifyDummy(password)
		return store.User{}, ErrSignInFailed
	} else if err != nil {
		return store.User{}, err
	}
	ok, rehash, err := store.VerifyPassword(user.PasswordHash, password)
	if errors.Is(err, store.ErrUnknownHash) {
		store.VerifyDummy(password)
		u.log.Warn("a user's password hash is unreadable; reset their password", "user", user.Username)
		return store.User{}, ErrSignInFailed
	} else if err != nil {
		return store.User{}, err
	}
	if !ok || user.Disabled {
		return store.User{}, ErrSignInFailed
	}
	var newHash string
	if rehash {
		if newHash, err = store.HashPassword(password); err != nil {
			return store.User{}, err
		}
	}
	now := u.now()
	user, err = u.db.UpdateUser(user.Username, func(x *store.User) error {
		x.LastSignIn = now
		if newHash != "" {
			x.PasswordHash = newHash
		}
		return nil
	})
	return user, err
}

func (u *UI) logoutPage(w http.ResponseWriter, r *http.Request) {
	user, _ := u.Authenticate(r)
	u.render(w, http.StatusOK, "logout", page{Heading: "Sign out", User: user, CSRF: u.csrfToken(w, r)})
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	if !u.csrfOK(r) {
		u.Error(w, r, http.StatusForbidden)
		return
	}
	user, _ := u.Authenticate(r)
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
