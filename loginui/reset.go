package loginui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/gatehouse-auth/gatehouse/store"
)

// Password reset by mail and invitations (SPEC §7, §9). A reset request
// gets one answer, whether or not the account exists: the token and the
// mail are made after the answer (sendLater), so its timing says nothing
// either. The link's page (GET) only shows a form; the POST consumes the
// token, sets the password, lifts a lockout and ends every session of
// the user. An invitation link works the same way for an account an admin
// created without a password.

// resetSent is the answer to every well-formed reset request.
const resetSent = "If an account exists for what you entered, we sent a link to choose a new password to its email address. The link works for %s and only once."

func (u *UI) resetForm(w http.ResponseWriter, r *http.Request, status int, msg string, fp *flowPage) {
	fp.Mail = u.mailer != nil
	u.render(w, status, "reset", page{Heading: "Reset your password", CSRF: u.csrfToken(w, r), Error: msg, Flow: fp})
}

// resetPage asks for the account. Without mail it says to ask an admin.
func (u *UI) resetPage(w http.ResponseWriter, r *http.Request) {
	u.resetForm(w, r, http.StatusOK, "", &flowPage{})
}

func (u *UI) resetRequest(w http.ResponseWriter, r *http.Request) {
	login := r.PostForm.Get("login")
	fp := &flowPage{Login: truncate(login, maxLogin)}
	if u.mailer == nil {
		u.resetForm(w, r, http.StatusOK, "", fp)
		return
	}
	again := func(status int, msg string) {
		fp.Field = "login"
		u.resetForm(w, r, status, msg, fp)
	}
	if !u.csrfOK(r) {
		again(http.StatusForbidden, msgFormExpired)
		return
	}
	login = strings.TrimSpace(login)
	if login == "" || len(login) > maxLogin || strings.ContainsFunc(login, unicode.IsControl) {
		again(http.StatusBadRequest, msgResetBadLogin)
		return
	}
	ctx := r.Context()
	if err := u.allowIP(r); err != nil {
		u.guardFailure(w, r, "password_reset", err, again)
		return
	}
	var known *store.User
	if found, err := u.db.UserByLogin(login); err == nil {
		known = &found
	} else if !errors.Is(err, store.ErrNotFound) {
		u.log.Error("password reset: finding the account", "err", err)
		u.Error(w, r, http.StatusInternalServerError)
		return
	}
	ip := u.clientAddr(r)
	target := truncate(login, 64)
	if known != nil {
		target = known.Username
	}
	// The client address's limit above is the only visible one. The
	// mailbox's own limit is silent: a 429 for a known account and none
	// for an unknown one (or one shared by a username and an address)
	// would tell who has an account. Reset requests are not failed
	// sign-ins.
	eligible := known != nil && known.Email != "" && !known.Disabled && !known.Pending &&
		u.mailAllowed(ctx, known.Email, "password_reset", known.Username)
	u.log.Info("audit", "event", "password_reset_requested", "user", target, "ip", ip, "mailed", eligible)
	if eligible {
		// The link's address is taken from the request now: the request is
		// not to be read once the answer is written.
		x := *known
		if base, err := u.mailLink(r, resetConfirmPath, ""); err != nil {
			u.log.Error("password reset: no link for this host", "user", x.Username, "err", err)
		} else {
			u.sendLater(func(ctx context.Context) { u.sendReset(ctx, x, ip, base) })
		}
	}
	u.notice(w, http.StatusOK, "Check your email", fmt.Sprintf(resetSent, inWords(u.cfg.TokenTTL)), loginPath, "Back to sign-in")
}

// sendReset issues a reset token for x and mails it as a link to base;
// failures are logged, since the answer has gone already.
func (u *UI) sendReset(ctx context.Context, x store.User, ip, base string) {
	token, err := u.db.CreateToken(x.Username, store.PurposeReset, u.cfg.TokenTTL)
	if err == nil {
		link := base + "?" + url.Values{"token": {token}}.Encode()
		err = u.send(ctx, mailReset, x.Email, mailData{Name: nameOf(x), Link: link, Expires: u.cfg.TokenTTL, ClientIP: ip})
	}
	if err != nil {
		u.log.Error("password reset: the mail was not sent", "user", x.Username, "err", err)
	}
}

// tokenUser returns the user a live token of purpose belongs to, if they
// may use it (not disabled, not pending approval).
func (u *UI) tokenUser(token, purpose string) (store.User, error) {
	name, err := u.db.PeekToken(token, purpose)
	if err != nil {
		return store.User{}, err
	}
	x, err := u.db.User(name)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, store.ErrTokenInvalid
	} else if err != nil {
		return store.User{}, err
	}
	if x.Disabled || x.Pending || (purpose == store.PurposeInvite && x.PasswordHash != "") {
		// An invitation is for an account without a password: once the
		// admin set one, a late invitation link must not replace it.
		return store.User{}, store.ErrTokenInvalid
	}
	return x, nil
}

// setPasswordText is what a set-password page says, per token purpose.
func setPasswordText(purpose string) (heading, lead, action, submit string) {
	if purpose == store.PurposeInvite {
		return "Choose your password", "Welcome! Choose the password for your new account.", invitePath, "Set password"
	}
	return "Choose a new password", "Choose a new password for your account.", resetConfirmPath, "Set new password"
}

func (u *UI) setPasswordForm(w http.ResponseWriter, r *http.Request, status int, purpose, msg, field string, x store.User, token string) {
	heading, lead, action, submit := setPasswordText(purpose)
	if purpose == store.PurposeInvite {
		lead = "Welcome, " + x.Username + "! Choose the password for your new account."
	}
	fp := &flowPage{Field: field, Username: x.Username, Token: token, Action: action, Submit: submit, MinLength: u.cfg.passwordMinLength()}
	u.render(w, status, "setpassword", page{Heading: heading, Message: lead, CSRF: u.csrfToken(w, r), Error: msg, Flow: fp,
		Referrer: tokenReferrer})
}

// linkUser is the account a mailed link's token is for, under the rules
// of tokenUser; when there is none it has answered with the invalid-link
// page (and logged a technical failure).
func (u *UI) linkUser(w http.ResponseWriter, token, purpose string) (store.User, bool) {
	x, err := u.tokenUser(token, purpose)
	if err != nil {
		if !errors.Is(err, store.ErrTokenInvalid) {
			u.log.Error("reading a mailed token", "purpose", purpose, "err", err)
		}
		u.invalidLink(w)
		return store.User{}, false
	}
	return x, true
}

// tokenPage shows the set-password form of a reset or invitation link;
// it only looks at the token (PeekToken), so opening the link twice, or a
// mail scanner opening it first, spends nothing.
func (u *UI) tokenPage(purpose string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token := r.URL.Query().Get("token")
		x, ok := u.linkUser(w, token, purpose)
		if !ok {
			return
		}
		u.setPasswordForm(w, r, http.StatusOK, purpose, "", "", x, token)
	}
}

// setPassword consumes a reset or invitation token and sets the password.
func (u *UI) setPassword(purpose string) http.HandlerFunc {
	event := "password_reset"
	if purpose == store.PurposeInvite {
		event = "invitation_accepted"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		token := truncate(r.PostForm.Get("token"), maxTokenField)
		if !u.csrfOK(r) {
			// The form again: the token is not spent.
			x, ok := u.linkUser(w, token, purpose)
			if !ok {
				return
			}
			u.setPasswordForm(w, r, http.StatusForbidden, purpose, msgFormExpired, "", x, token)
			return
		}
		if err := u.allowIP(r); err != nil {
			x, _ := u.tokenUser(token, purpose)
			u.guardFailure(w, r, event, err, func(status int, msg string) {
				u.setPasswordForm(w, r, status, purpose, msg, "", x, token)
			})
			return
		}
		x, ok := u.linkUser(w, token, purpose)
		if !ok {
			return
		}
		// The policy before the token is spent: a refused password leaves
		// the link working.
		pw := r.PostForm.Get("password")
		if err := checkNewPassword(pw, r.PostForm.Get("confirm"), x.Username, x.Email, u.cfg.passwordMinLength()); err != nil {
			field := "password"
			if errors.Is(err, msgPasswordMismatch) {
				field = "confirm"
			}
			u.setPasswordForm(w, r, http.StatusBadRequest, purpose, err.Error(), field, x, token)
			return
		}
		hash, err := u.hashNew(r.Context(), pw)
		if err != nil {
			u.guardFailure(w, r, event, err, func(status int, msg string) {
				u.setPasswordForm(w, r, status, purpose, msg, "", x, token)
			})
			return
		}
		// Spent in one transaction: of two posts racing with one link,
		// only one gets here.
		name, err := u.db.ConsumeToken(token, purpose)
		if errors.Is(err, store.ErrTokenInvalid) || (err == nil && name != x.Username) {
			u.invalidLink(w)
			return
		} else if err != nil {
			u.log.Error("consuming a mailed token", "purpose", purpose, "err", err)
			u.Error(w, r, http.StatusInternalServerError)
			return
		}
		now := u.now()
		_, err = u.db.UpdateUser(x.Username, func(y *store.User) error {
			if y.Disabled || y.Pending || (purpose == store.PurposeInvite && y.PasswordHash != "") {
				return store.ErrTokenInvalid // changed since the check: nothing is set
			}
			y.PasswordHash, y.PasswordChanged = hash, now
			y.FailedLogins, y.LastFailure, y.LockedUntil = 0, time.Time{}, time.Time{}
			// The link reached the address it was mailed to (tokens end
			// when Email changes), so the address is confirmed.
			if y.Email != "" && y.Email == x.Email {
				y.EmailVerified = true
			}
			return nil
		})
		switch {
		case errors.Is(err, store.ErrTokenInvalid), errors.Is(err, store.ErrNotFound):
			u.invalidLink(w)
			return
		case err != nil:
			u.log.Error("setting a password from a mailed link", "user", x.Username, "err", err)
			u.Error(w, r, http.StatusInternalServerError)
			return
		}
		// Whoever knew the old password, or holds a session, is out (SPEC §7).
		ended, err := u.db.DeleteUserSessions(x.Username, "")
		if err != nil {
			// The password did change; say so in the log, not with a false success.
			u.log.Error("ending the sessions after a password reset", "user", x.Username, "err", err)
			u.Error(w, r, http.StatusInternalServerError)
			return
		}
		u.guard.succeededUser(r.Context(), userKey(&x, ""))
		u.log.Info("audit", "event", event, "user", x.Username, "ip", u.clientAddr(r), "sessions_ended", ended)
		heading := "Your password is changed"
		if purpose == store.PurposeInvite {
			heading = "Your password is set"
		}
		u.notice(w, http.StatusOK, heading, "You can now sign in with your new password.", loginPath, "Sign in")
	}
}
