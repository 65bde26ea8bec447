package loginui

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/gatehouse-auth/gatehouse/store"
)

// Self-registration and email verification (SPEC §9).
//
// Who may sign in after registering: an account that needs no approval can
// sign in at once, with or without mail; the confirmation link only proves
// the address (store.User.EmailVerified), it gates nothing. With
// RegistrationApproval the account is store.User.Pending, which Authenticate
// and checkPassword treat like Disabled, until an admin approves it.
//
// Which accounts exist is never said on the page: a registration whose
// username or email is taken gets the very page a new account gets. The
// answer goes to a mailbox instead (mailExists): the owner of a taken
// address learns that someone tried to use it, and a new address learns
// that its chosen username is taken. Without mail the taken case simply
// creates nothing. What cannot be hidden is what the registrant can try
// afterwards (whether a mail arrives, whether the new password signs in):
// that tells them whether the username they chose was free, as every
// service with chosen usernames does; the per-address limit bounds it.

// Paths of the pages that mail links lead to, and of their forms.
const (
	registerPath     = "/.gatehouse/register"
	verifyPath       = "/.gatehouse/verify"
	resetPath        = "/.gatehouse/reset"
	resetConfirmPath = "/.gatehouse/reset/confirm"
	invitePath       = "/.gatehouse/invite"
	accountVerify    = accountPath + "/verify"
	loginPath        = "/.gatehouse/login"
)

// Bounds of a registration.
const (
	minRegisterUsername = 3 // characters; shorter names are for admins to hand out
	maxTokenField       = 128
	mailTimeout         = 30 * time.Second // one Send, whatever the transport's own timeouts
)

// Texts of the registration, verification and reset pages; tests pin them.
const (
	msgRegisterBadUsername    = "Choose a username of 3 to 64 characters: letters a-z, digits, '.', '_' and '-', starting with a letter or digit."
	msgRegisterBadEmail       = "Enter your email address, like name@example.com."
	msgRegisterBadDisplayName = "Your name must be one line of at most 128 characters."
	msgMailFailed             = "We could not send the email right now. Please try again later."
	msgLinkInvalid            = "This link does not work any more: it was used already, it has expired or a newer one was sent. Links work only once."
	msgResetBadLogin          = "Enter your username or email address."
)

// flowPage is what the registration, reset, verification and invitation
// pages show beyond the common page data.
type flowPage struct {
	Field       string // the input page.Error is about, for aria-invalid
	Username    string // register: as typed; set-password: the account, for password managers
	Email       string
	DisplayName string
	Login       string // reset request: as typed
	Token       string // the link's token, carried from GET to POST
	Action      string // where a set-password form posts
	Submit      string // its button
	MinLength   int
	Mail        bool   // mail is configured
	SignIn      string // confirm: sign in first, through this link, to confirm
	Other       string // confirm: the account signed in now, when the link is for another
}

// mailRoutes adds the pages that registration and mail links lead to.
func (u *UI) mailRoutes(mux *http.ServeMux, post func(http.HandlerFunc) http.Handler) {
	for _, name := range []string{"register", "reset", "setpassword", "confirm", "notice"} {
		// Embedded and covered by tests: a parse error is a build mistake.
		u.pages[name] = template.Must(template.ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	if u.cfg.Registration {
		mux.HandleFunc("GET "+registerPath, u.registerPage)
		mux.Handle("POST "+registerPath, post(u.register))
	}
	mux.HandleFunc("GET "+verifyPath, u.verifyPage)
	mux.Handle("POST "+verifyPath, post(u.verify))
	mux.Handle("POST "+accountVerify, post(u.resendVerification))
	mux.HandleFunc("GET "+resetPath, u.resetPage)
	mux.Handle("POST "+resetPath, post(u.resetRequest))
	mux.HandleFunc("GET "+resetConfirmPath, u.tokenPage(store.PurposeReset))
	mux.Handle("POST "+resetConfirmPath, post(u.setPassword(store.PurposeReset)))
	mux.HandleFunc("GET "+invitePath, u.tokenPage(store.PurposeInvite))
	mux.Handle("POST "+invitePath, post(u.setPassword(store.PurposeInvite)))
}

// notice renders a page that only says something, with one link onwards.
func (u *UI) notice(w http.ResponseWriter, status int, heading, msg, link, linkText string) {
	u.render(w, status, "notice", page{Heading: heading, Message: msg, Back: link, BackText: linkText})
}

// invalidLink answers a token that is unknown, used, expired, of another
// purpose or of an account that may not use it: one page for all, 400.
func (u *UI) invalidLink(w http.ResponseWriter) {
	// The address may hold a live token of another purpose.
	u.render(w, http.StatusBadRequest, "notice", page{Heading: "This link has expired", Message: msgLinkInvalid,
		Back: loginPath, BackText: "Go to sign-in", Referrer: tokenReferrer})
}

// tooMany sets Retry-After for a limit and returns the seconds, as sign-in does.
func tooMany(w http.ResponseWriter, le *limitError) int {
	// The limiter keeps wall-clock time, whatever clock the UI was given.
	retry := max(1, int(time.Until(le.reset).Seconds()+0.999))
	w.Header().Set("Retry-After", strconv.Itoa(retry))
	return retry
}

// guardFailure answers an error of the guard (a limit, the hashing gate)
// or a technical one. again shows the form with a message.
func (u *UI) guardFailure(w http.ResponseWriter, r *http.Request, event string, err error, again func(status int, msg string)) {
	var le *limitError
	switch {
	case errors.As(err, &le):
		u.log.Info("audit", "event", event+"_rate_limited", "ip", u.clientAddr(r))
		again(http.StatusTooManyRequests, fmt.Sprintf(msgTooMany, tooMany(w, le)))
	case errors.Is(err, ErrBusy):
		u.log.Warn(event+" refused: every hashing slot is busy", "ip", u.clientAddr(r))
		w.Header().Set("Retry-After", "1")
		u.Error(w, r, http.StatusServiceUnavailable)
	default:
		u.log.Error(event, "err", err)
		u.Error(w, r, http.StatusInternalServerError)
	}
}

// allowIP counts a form post against the client address's limit, the one
// sign-in uses: these forms hash passwords or send mail.
func (u *UI) allowIP(r *http.Request) error {
	var ip netip.Addr
	if u.clientIP != nil {
		ip = u.clientIP(r)
	}
	return u.guard.allowIP(r.Context(), ip)
}

// mailboxKey is the limiter key of one mailbox. Every mail a visitor can
// make the gateway send (a confirmation link, the notice that an address
// or name is taken, a reset link) counts against it, so one address gets
// at most the per-account rate of mail in all, whatever mix of forms
// asked for it.
func mailboxKey(address string) string {
	if email, err := store.CanonicalEmail(address); err == nil {
		address = email
	}
	return "mail:" + address
}

// mailAllowed counts one mail to address against its mailbox. When the
// mailbox has had its share, the mail is not sent, and the visitor's page
// does not say so: an answer that differed would tell whether the address
// has an account. The audit log records it.
func (u *UI) mailAllowed(ctx context.Context, address, event, user string) bool {
	err := u.guard.takeUser(ctx, mailboxKey(address))
	if err == nil {
		return true
	}
	if !errors.Is(err, ErrTooManyAttempts) {
		u.log.Error(event+": mail limit", "err", err)
	}
	u.log.Info("audit", "event", event+"_mail_suppressed", "user", user)
	return false
}

// takeUser counts a request against an account key's limit (the per-user
// limiter of sign-in, under a key of its own), or refuses it.
func (g *guard) takeUser(ctx context.Context, key string) error {
	if err := g.allowUser(ctx, key); err != nil {
		return err
	}
	g.failedUser(ctx, key)
	return nil
}

// hashNew hashes a new password under the hashing gate.
func (u *UI) hashNew(ctx context.Context, pw string) (string, error) {
	if err := u.guard.acquire(ctx); err != nil {
		return "", err
	}
	defer u.guard.release()
	return store.HashPassword(pw)
}

// mailLink is the absolute link to path?token=... on the host the request
// came to. Only a configured app host is used: a forged Host header must
// not make a reset mail point at the attacker's server (password reset
// poisoning). Without Deps.IsAppHost no host is known good: no link.
func (u *UI) mailLink(r *http.Request, path, token string) (string, error) {
	host := strings.ToLower(r.Host)
	if host == "" || strings.ContainsAny(host, "/\\@?#% \t\r\n") || u.isAppHost == nil || !u.isAppHost(hostOf(r)) {
		return "", fmt.Errorf("loginui: host %q is not an app host; no link is mailed for it", truncate(r.Host, 256))
	}
	l := url.URL{Scheme: "https", Host: host, Path: path}
	if token != "" {
		l.RawQuery = url.Values{"token": {token}}.Encode()
	}
	return l.String(), nil
}

// send renders and sends one mail, waiting at most mailTimeout.
func (u *UI) send(ctx context.Context, kind, to string, d mailData) error {
	if u.mailer == nil {
		return errors.New("loginui: no mailer configured")
	}
	m, err := u.mailMessage(kind, to, d)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, mailTimeout)
	defer cancel()
	return u.mailer.Send(ctx, m)
}

// sendLater runs fn after the answer, so that neither the time a mail
// takes nor the store writes before it tell whether an account exists.
// It is bounded by mailTimeout and does not end with the request.
func (u *UI) sendLater(fn func(ctx context.Context)) {
	u.background.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), mailTimeout+5*time.Second)
		defer cancel()
		fn(ctx)
	})
}

// Drain waits for the mails still being sent after their answer (see
// sendLater), each bounded by a timeout. cmd calls it at shutdown, after
// the server has stopped taking requests, so no reset mail is cut off.
func (u *UI) Drain() { u.background.Wait() }

// nameOf is how a mail greets a user: "" (a plain "Hello,") while the
// address is unconfirmed, since whoever registered with someone else's
// address chose that name and could fill it with a lure.
func nameOf(x store.User) string {
	switch {
	case !x.EmailVerified:
		return ""
	case x.DisplayName != "":
		return x.DisplayName
	}
	return x.Username
}

func (u *UI) registerForm(w http.ResponseWriter, r *http.Request, status int, msg string, fp *flowPage) {
	fp.MinLength, fp.Mail = u.cfg.passwordMinLength(), u.mailer != nil
	u.render(w, status, "register", page{Heading: "Create an account", CSRF: u.csrfToken(w, r), Error: msg, Flow: fp})
}

func (u *UI) registerPage(w http.ResponseWriter, r *http.Request) {
	u.registerForm(w, r, http.StatusOK, "", &flowPage{})
}

// register creates an account (see the comment at the top of this file).
func (u *UI) register(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	fp := &flowPage{
		Username: truncate(f.Get("username"), 64), Email: truncate(f.Get("email"), 254),
		DisplayName: truncate(f.Get("display_name"), 4*maxDisplayName),
	}
	again := func(status int, field, msg string) {
		fp.Field = field
		u.registerForm(w, r, status, msg, fp)
	}
	if !u.csrfOK(r) {
		again(http.StatusForbidden, "", msgFormExpired)
		return
	}
	if err := u.allowIP(r); err != nil {
		u.guardFailure(w, r, "registration", err, func(status int, msg string) { again(status, "", msg) })
		return
	}
	name, err := store.CanonicalUsername(f.Get("username"))
	if err != nil || len(name) < minRegisterUsername {
		again(http.StatusBadRequest, "username", msgRegisterBadUsername)
		return
	}
	rawEmail := f.Get("email")
	email, err := store.CanonicalEmail(rawEmail)
	// Self-registered addresses are ASCII (an internationalised domain in
	// its xn-- form): bоb@example.com with a Cyrillic о must not sit beside
	// bob@example.com looking the same. Admins may still enter any address.
	if err != nil || strings.ContainsFunc(rawEmail, unicode.IsControl) || strings.ContainsFunc(email, func(r rune) bool { return r > 0x7e }) {
		again(http.StatusBadRequest, "email", msgRegisterBadEmail)
		return
	}
	displayName := strings.TrimSpace(f.Get("display_name"))
	if !ValidDisplayName(displayName) {
		again(http.StatusBadRequest, "display_name", msgRegisterBadDisplayName)
		return
	}
	pw := f.Get("password")
	if err := checkNewPassword(pw, f.Get("confirm"), name, email, u.cfg.passwordMinLength()); err != nil {
		field := "password"
		if errors.Is(err, msgPasswordMismatch) {
			field = "confirm"
		}
		again(http.StatusBadRequest, field, err.Error())
		return
	}
	// Every well-formed registration mails its address (a confirmation, or
	// "you already have an account"), so it counts against that address,
	// as a reset request counts against its account: one client cannot
	// flood a mailbox. The key is the canonical address, counted whether
	// or not an account has it, so a 429 tells nothing.
	if err := u.guard.takeUser(r.Context(), "register:email:"+email); err != nil {
		u.guardFailure(w, r, "registration", err, func(status int, msg string) { again(status, "", msg) })
		return
	}
	// Hashed before anything is looked up, so a taken name costs the same.
	hash, err := u.hashNew(r.Context(), pw)
	if err != nil {
		u.guardFailure(w, r, "registration", err, func(status int, msg string) { again(status, "", msg) })
		return
	}
	x := store.User{
		Username: name, Email: email, DisplayName: displayName, PasswordHash: hash, PasswordChanged: u.now(),
		Roles: slices.Clone(u.cfg.DefaultRoles), Pending: u.cfg.RegistrationApproval,
	}
	ip := u.clientAddr(r)
	err = u.db.CreateUser(x)
	switch {
	case errors.Is(err, store.ErrExists):
		u.log.Info("audit", "event", "registration_duplicate", "user", name, "ip", ip)
		u.registered(w, u.mailDuplicate(r, x))
		return
	case err != nil:
		u.log.Error("registration: creating the account", "user", name, "err", err)
		u.Error(w, r, http.StatusInternalServerError)
		return
	}
	u.log.Info("audit", "event", "registered", "user", name, "ip", ip, "pending", x.Pending,
		"roles", strings.Join(x.Roles, ","))
	sent := true
	if u.mailer != nil && u.mailAllowed(r.Context(), x.Email, "registration", name) {
		if err := u.sendVerification(r, x); err != nil {
			u.log.Error("registration: the confirmation mail was not sent; the account exists", "user", name, "err", err)
			sent = false
		}
	}
	u.registered(w, sent)
}

// mailDuplicate tells the mailbox what the page does not: the address
// already has an account, or the username is taken. It reports whether
// the mail went out (true without a Mailer: there was nothing to send),
// so a failure looks exactly like a failed confirmation mail.
func (u *UI) mailDuplicate(r *http.Request, x store.User) bool {
	if u.mailer == nil || !u.mailAllowed(r.Context(), x.Email, "registration_duplicate", x.Username) {
		return true // the page a new account gets, either way
	}
	var d mailData // no name: x's address is not confirmed (see nameOf)
	path := registerPath
	if owner, err := u.db.UserByLogin(x.Email); err == nil {
		d.Name, path = nameOf(owner), resetPath
	} else {
		d.Username = x.Username // the address is free; the username is not
	}
	link, err := u.mailLink(r, path, "")
	if err == nil {
		d.Link = link
		err = u.send(context.WithoutCancel(r.Context()), mailExists, x.Email, d)
	}
	if err != nil {
		u.log.Error("registration: the mail about a taken username or address was not sent", "user", x.Username, "err", err)
		return false
	}
	return true
}

// sendVerification mails x a new link that confirms their address.
func (u *UI) sendVerification(r *http.Request, x store.User) error {
	token, err := u.db.CreateToken(x.Username, store.PurposeVerify, u.cfg.TokenTTL)
	if err != nil {
		return err
	}
	link, err := u.mailLink(r, verifyPath, token)
	if err != nil {
		return err
	}
	// The account is named, so the owner of an address someone else
	// registered with can tell the link is not for them.
	return u.send(context.WithoutCancel(r.Context()), mailVerify, x.Email,
		mailData{Name: nameOf(x), Username: x.Username, Link: link, Expires: u.cfg.TokenTTL})
}

// Texts of the answer to a registration, by whether mail is configured,
// whether approval is needed and whether the mail went out.
const (
	msgRegisteredMailFailedApproval = "Your account was created, but we could not send the email that confirms your address. An administrator must approve the account before you can sign in; then you can ask for a new confirmation link on your account page."
	msgRegisteredMailFailed         = "Your account was created, but we could not send the email that confirms your address. You can sign in now and ask for a new confirmation link on your account page."
	msgRegisteredMailApproval       = "We sent you an email with a link to confirm your address. An administrator must also approve your account before you can sign in."
	msgRegisteredMail               = "We sent you an email with a link to confirm your address. You can already sign in."
	msgRegisteredApproval           = "Your account waits for approval. You can sign in once an administrator has approved it."
	msgRegistered                   = "Your account is ready. You can sign in now."
)

// registered is the one answer to every well-formed registration, new
// account or taken name alike. sent is false when a mail failed.
func (u *UI) registered(w http.ResponseWriter, sent bool) {
	approval, mail := u.cfg.RegistrationApproval, u.mailer != nil
	heading, msg := "Check your email", msgRegisteredMail
	switch {
	case !sent && approval:
		heading, msg = "Account created", msgRegisteredMailFailedApproval
	case !sent:
		heading, msg = "Account created", msgRegisteredMailFailed
	case mail && approval:
		msg = msgRegisteredMailApproval
	case !mail && approval:
		heading, msg = "Thank you for registering", msgRegisteredApproval
	case !mail:
		heading, msg = "Thank you for registering", msgRegistered
	}
	u.notice(w, http.StatusOK, heading, msg, loginPath, "Go to sign-in")
}

// verifyPage shows the button that confirms an address. A GET never
// changes anything: mail scanners and link previews open links too.
// Confirming an address needs the account's own session: a mail that
// reached someone who never registered (an attacker typed their address)
// cannot attach their address to the attacker's account with one click,
// since they cannot sign in as it.

func (u *UI) verifyPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	x, ok := u.linkUser(w, token, store.PurposeVerify)
	if !ok {
		return
	}
	name := x.Username
	u.confirmPage(w, r, http.StatusOK, token, name, "")
}

// confirmPage shows the confirm button to the account the link is for,
// and to anyone else a way to sign in as it (or a note that they are
// signed in as another account).
func (u *UI) confirmPage(w http.ResponseWriter, r *http.Request, status int, token, name, msg string) {
	fp := &flowPage{Token: token, Username: name}
	user, err := u.Authenticate(r)
	if err != nil {
		u.log.Error("verification: reading the session", "err", err)
		u.Error(w, r, http.StatusInternalServerError)
		return
	}
	switch {
	case user == nil:
		fp.SignIn = loginPath + "?rd=" + url.QueryEscape(verifyPath+"?token="+token)
	case user.Username != name:
		fp.Other = user.Username
	}
	u.render(w, status, "confirm", page{Heading: "Confirm your email address", CSRF: u.csrfToken(w, r),
		Error: msg, Flow: fp, Referrer: tokenReferrer})
}

func (u *UI) verify(w http.ResponseWriter, r *http.Request) {
	token := truncate(r.PostForm.Get("token"), maxTokenField)
	x, ok := u.linkUser(w, token, store.PurposeVerify)
	if !ok {
		return
	}
	name := x.Username
	if !u.csrfOK(r) {
		u.confirmPage(w, r, http.StatusForbidden, token, name, msgFormExpired)
		return
	}
	user, err := u.Authenticate(r)
	if err != nil {
		u.log.Error("verification: reading the session", "err", err)
		u.Error(w, r, http.StatusInternalServerError)
		return
	}
	if user == nil || user.Username != name {
		u.log.Info("audit", "event", "email_verify_refused", "user", name, "ip", u.clientAddr(r))
		u.confirmPage(w, r, http.StatusForbidden, token, name, "")
		return
	}
	switch _, err := u.db.VerifyEmail(token); {
	case errors.Is(err, store.ErrTokenInvalid):
		u.invalidLink(w)
		return
	case err != nil:
		u.log.Error("verification: confirming the address", "err", err)
		u.Error(w, r, http.StatusInternalServerError)
		return
	}
	u.log.Info("audit", "event", "email_verified", "user", name, "ip", u.clientAddr(r))
	u.notice(w, http.StatusOK, "Email address confirmed", "Thank you: your email address is confirmed.", accountPath, "Go to your account")
}

// resendVerification mails a signed-in user a new confirmation link. It
// waits for the mail, since the user already knows their account exists.
func (u *UI) resendVerification(w http.ResponseWriter, r *http.Request) {
	user, sid := u.accountUser(w, r)
	if user == nil {
		return
	}
	if !u.csrfOK(r) {
		u.renderAccount(w, r, http.StatusForbidden, user, sid, accountPage{VerifyError: msgFormExpired})
		return
	}
	if u.mailer == nil || user.Email == "" || user.EmailVerified {
		u.securityHeaders(w.Header())
		http.Redirect(w, r, accountPath, http.StatusSeeOther)
		return
	}
	// The signed-in owner asks for mail to their own address, so a limit
	// is shown to them (with Retry-After) rather than kept quiet.
	if err := u.guard.takeUser(r.Context(), mailboxKey(user.Email)); err != nil {
		var le *limitError
		if errors.As(err, &le) {
			u.renderAccount(w, r, http.StatusTooManyRequests, user, sid, accountPage{VerifyError: fmt.Sprintf(msgTooMany, tooMany(w, le))})
			return
		}
		u.log.Error("verification: rate limit", "err", err)
		u.Error(w, r, http.StatusInternalServerError)
		return
	}
	if err := u.sendVerification(r, *user); err != nil {
		u.log.Error("verification: the confirmation mail was not sent", "user", user.Username, "err", err)
		u.renderAccount(w, r, http.StatusServiceUnavailable, user, sid, accountPage{VerifyError: msgMailFailed})
		return
	}
	u.log.Info("audit", "event", "verification_sent", "user", user.Username, "ip", u.clientAddr(r))
	u.securityHeaders(w.Header())
	http.Redirect(w, r, accountPath+"?done=verify", http.StatusSeeOther)
}
