package loginui

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"

	"github.com/gatehouse-auth/gatehouse/store"
)

// pageBrand is what the layout shows of the brand.
type pageBrand struct {
	Title   string
	HasLogo bool
}

// page is the data every template gets.
type page struct {
	Brand    pageBrand
	Heading  string
	CSRF     string
	User     *store.User
	Host     string
	Error    string
	Username string
	RD       string
	Remember bool
	Rule     string
	Status   int
	Message  string
	Back     string
	BackText string
	Account  *accountPage // the account page's own data
	Admin    *adminData   // the admin console's own data
	Flow     *flowPage    // registration, reset, verification and invitation pages

	// Links the sign-in page offers, set by render from the configuration.
	SignUp bool // "Create an account": registration is open
	Forgot bool // "Forgot your password?": reset by mail works

	// Referrer replaces the Referrer-Policy "same-origin" (header and
	// <meta>) on a page whose address holds a secret: tokenReferrer.
	Referrer string
}

// tokenReferrer is the referrer policy of a page whose address holds a
// mailed token. "same-origin" would hand the link to every app behind
// this host in Referer. Not "no-referrer": a browser then sends "Origin:
// null" with the page's form, and one too old for Sec-Fetch-Site would
// have it refused by the cross-origin check. "strict-origin" sends the
// origin alone, never a path or query.
const tokenReferrer = "strict-origin"

// securityHeaders go on every gateway page (SPEC §9).
func (u *UI) securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	if u.cfg.HSTS {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
}

// render writes a page with its status. Templates render into a buffer
// first, so a template error is a clean 500, never half a page.
func (u *UI) render(w http.ResponseWriter, status int, name string, p page) {
	p.Brand = pageBrand{Title: u.cfg.Brand.Title, HasLogo: len(u.cfg.Brand.Logo) > 0}
	p.SignUp, p.Forgot = u.cfg.Registration, u.mailer != nil
	var buf bytes.Buffer
	if err := u.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		u.log.Error("rendering page", "page", name, "err", err)
		status, buf = http.StatusInternalServerError, *bytes.NewBufferString("<!doctype html><title>Error</title><p>Something went wrong.</p>")
	}
	u.securityHeaders(w.Header())
	if p.Referrer != "" {
		w.Header().Set("Referrer-Policy", p.Referrer)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// Forbidden renders the 403 page: who is signed in, a sign-out button,
// and the rule that decided.
func (u *UI) Forbidden(w http.ResponseWriter, r *http.Request, user *store.User, rule string) {
	p := page{Heading: "Access denied", User: user, Rule: rule, Back: backLink(r)}
	if user != nil {
		p.CSRF = u.csrfToken(w, r)
	}
	u.render(w, http.StatusForbidden, "forbidden", p)
}

// errorTexts are the human words for each status the gateway answers.
var errorTexts = map[int][2]string{
	http.StatusBadRequest:            {"This address is not valid", "The link you followed or the form you sent could not be understood."},
	http.StatusForbidden:             {"This form has expired", "Please go back, reload the page and try again."},
	http.StatusNotFound:              {"Page not found", "There is nothing at this address."},
	http.StatusMethodNotAllowed:      {"Not allowed here", "This page cannot be used that way."},
	http.StatusRequestEntityTooLarge: {"Too much data", "The form you sent is larger than this page accepts."},
	http.StatusMisdirectedRequest:    {"Unknown site", "This gateway does not serve the site you asked for. Check the address."},
	http.StatusTooManyRequests:       {"Too many attempts", "Please wait a moment before you try again."},
	http.StatusInternalServerError:   {"Something went wrong", "The gateway could not answer your request. Please try again in a moment."},
	http.StatusBadGateway:            {"The app is not answering", "The application behind this gateway is not reachable right now. Please try again in a moment."},
	http.StatusServiceUnavailable:    {"Busy right now", "The gateway is handling too many requests. Please try again in a moment."},
	http.StatusGatewayTimeout:        {"The app took too long", "The application behind this gateway did not answer in time. Please try again in a moment."},
}

// Error renders an error page. The text is fixed per status; no error
// detail ever reaches the page.
func (u *UI) Error(w http.ResponseWriter, r *http.Request, status int) {
	text, ok := errorTexts[status]
	if !ok {
		text = [2]string{http.StatusText(status), "The gateway could not answer your request."}
	}
	p := page{Heading: text[0], Message: text[1], Status: status, Back: "/", BackText: "Go to the home page"}
	if status == http.StatusForbidden || status == http.StatusTooManyRequests {
		p.Back, p.BackText = "/.gatehouse/login", "Back to sign-in"
	}
	u.render(w, status, "error", p)
}

// backLink is the page the browser came from, when it is a local page of
// this host (checked like a sign-in redirect), for the forbidden page's
// "Go back"; "" otherwise.
func backLink(r *http.Request) string {
	ref, err := url.Parse(r.Referer())
	if err != nil || (ref.Scheme != "https" && ref.Scheme != "http") || !strings.EqualFold(ref.Host, r.Host) {
		return ""
	}
	back := ref.RequestURI()
	if back == r.URL.RequestURI() || SafeRedirect(back, nil) != back {
		return ""
	}
	return back
}

// hostOf is the request's host without port, for the sign-in page's
// "continue to" line.
func hostOf(r *http.Request) string {
	h := r.Host
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	return strings.ToLower(h)
}
