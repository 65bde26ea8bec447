package loginui

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/mail"
	"net/url"
	"strings"
	texttemplate "text/template"
	"time"
)

//go:embed templates/mail/*
var mailFS embed.FS

// Message is one outgoing mail: a single recipient, a subject, and the same
// content as plain text and as HTML (sent as multipart/alternative).
type Message struct {
	To      string // a bare address, "alice@example.com"
	Subject string
	Text    string
	HTML    string
}

// Mailer delivers a Message. cmd/gatehouse provides the SMTP and file
// transports; a nil Mailer means mail is not configured.
//
// Send the mail only after the account change it is about is committed: a
// failed delivery is reported (logged by the transport, a friendly page for
// the user) and never undoes the change.
type Mailer interface {
	Send(ctx context.Context, m Message) error
}

// ErrMailHeader is returned for a recipient or subject that could smuggle
// extra header lines (CR, LF or another control character) or a recipient
// that is not exactly one plain address.
var ErrMailHeader = errors.New("loginui: unsafe mail header")

// Check refuses a message that a transport must not send: a recipient that
// is not one bare address, a subject with a control character (CR/LF would
// inject headers, RFC 5322 §2.2), or an empty body. Transports call it too.
func (m Message) Check() error {
	if m.To == "" || strings.ContainsFunc(m.To, isControl) {
		return fmt.Errorf("%w: recipient %q", ErrMailHeader, m.To)
	}
	addr, err := mail.ParseAddress(m.To)
	if err != nil || addr.Address != m.To || addr.Name != "" || strings.Count(m.To, "@") != 1 {
		return fmt.Errorf("%w: recipient %q is not a plain address", ErrMailHeader, m.To)
	}
	if m.Subject == "" || strings.ContainsFunc(m.Subject, isControl) {
		return fmt.Errorf("%w: subject %q", ErrMailHeader, m.Subject)
	}
	if m.Text == "" || m.HTML == "" {
		return errors.New("loginui: a mail needs a text and an HTML body")
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// The kinds of mail the gateway sends; each has templates/mail/KIND.txt
// (defining "subject" and "text") and templates/mail/KIND.html ("content").
const (
	mailVerify = "verify" // confirm an email address (registration, email change)
	mailReset  = "reset"  // reset a forgotten password
	mailInvite = "invite" // an admin created the account: set a password
	// mailExists answers a registration that could not create an account,
	// in the mailbox rather than on the page (the page looks like success,
	// so it tells no one which accounts exist): sent to the address of an
	// existing account, or, with Username set, to a new address whose
	// chosen username is taken. Its link needs no expiry.
	mailExists = "exists"
)

// mailData is what the caller fills in for a mail.
type mailData struct {
	Name     string        // display name, or the username when there is none
	Username string        // invite: the username to sign in with (optional); exists: the username that is taken; verify: the account
	Link     string        // absolute http(s) URL the mail is about
	Expires  time.Duration // how long Link works, e.g. time.Hour ("1 hour")
	ClientIP string        // reset: the address the request came from (optional)
}

// mailView is what the templates see.
type mailView struct {
	mailData
	Brand    string
	Accent   string
	OnAccent string
	Expiry   string // Expires in words
	Subject  string // the rendered subject, for the HTML <title>
}

// mailButton is the call-to-action link of the HTML body.
type mailButton struct{ Link, Accent, OnAccent, Label string }

// Button is the data of the "button" template: {{template "button" (.Button "Label")}}.
func (v mailView) Button(label string) mailButton {
	return mailButton{Link: v.Link, Accent: v.Accent, OnAccent: v.OnAccent, Label: label}
}

// mailMessage renders the mail of kind for one recipient. It refuses a
// relative or non-http(s) link and any header that fails Message.Check.
func (u *UI) mailMessage(kind, to string, d mailData) (Message, error) {
	if kind != mailVerify && kind != mailReset && kind != mailInvite && kind != mailExists {
		return Message{}, fmt.Errorf("loginui: unknown mail kind %q", kind)
	}
	if l, err := url.Parse(d.Link); err != nil || (l.Scheme != "https" && l.Scheme != "http") || l.Host == "" {
		return Message{}, fmt.Errorf("loginui: mail link %q is not an absolute http(s) URL", d.Link)
	}
	if d.Expires <= 0 && kind != mailExists {
		return Message{}, errors.New("loginui: a mail link needs an expiry")
	}
	v := mailView{
		mailData: d,
		Brand:    u.cfg.Brand.Title,
		Accent:   u.cfg.Brand.Color,
		OnAccent: onAccent(u.cfg.Brand.Color),
		Expiry:   inWords(d.Expires),
	}
	text, err := texttemplate.ParseFS(mailFS, "templates/mail/"+kind+".txt")
	if err != nil {
		return Message{}, fmt.Errorf("loginui: mail template %s: %w", kind, err)
	}
	html, err := htmltemplate.ParseFS(mailFS, "templates/mail/layout.html", "templates/mail/"+kind+".html")
	if err != nil {
		return Message{}, fmt.Errorf("loginui: mail template %s: %w", kind, err)
	}
	var subject, body, page bytes.Buffer
	err = text.ExecuteTemplate(&subject, "subject", v)
	v.Subject = strings.TrimSpace(subject.String())
	if err == nil {
		err = text.ExecuteTemplate(&body, "text", v)
	}
	if err == nil {
		err = html.ExecuteTemplate(&page, "layout", v)
	}
	if err != nil {
		return Message{}, fmt.Errorf("loginui: mail template %s: %w", kind, err)
	}
	m := Message{To: to, Subject: v.Subject, Text: strings.TrimSpace(body.String()) + "\n", HTML: page.String()}
	if err := m.Check(); err != nil {
		return Message{}, err
	}
	return m, nil
}

// inWords writes a link's lifetime for people: "1 hour", "30 minutes",
// "3 days".
func inWords(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		return unit(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	default:
		return unit(max(int64(d/time.Minute), 1), "minute")
	}
}
