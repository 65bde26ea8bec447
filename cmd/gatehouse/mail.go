package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
	gomailsmtp "github.com/wneessen/go-mail/smtp"

	"github.com/gatehouse-auth/gatehouse/loginui"
)

// Mail modes (mail.mode) and SMTP TLS policies (mail.smtp.tls).
const (
	mailModeSMTP = "smtp" // deliver through an SMTP server
	mailModeFile = "file" // write .eml files under data_dir/outbox (development)

	smtpSTARTTLS      = "starttls"      // plain connect, then STARTTLS is mandatory (port 587)
	smtpTLS           = "tls"           // implicit TLS from the first byte (port 465)
	smtpOpportunistic = "opportunistic" // STARTTLS when offered, else plain (port 25)
	smtpNone          = "none"          // never TLS: a relay on localhost (port 25)
)

// mailConfig is the resolved mail section. Mode "" means no mail.
type mailConfig struct {
	Mode     string        // "", mailModeSMTP or mailModeFile
	From     string        // RFC 5322 address, e.g. "Gatehouse <noreply@example.com>"
	Host     string        // smtp: server host name or IP
	Port     int           // smtp: default by TLS policy (465 for tls, 587 for starttls, 25 else)
	Username string        // smtp: "" for no AUTH
	Password string        // smtp: never logged
	TLS      string        // smtp: smtpSTARTTLS (default), smtpTLS, smtpOpportunistic or smtpNone
	Timeout  time.Duration // smtp: bounds connecting (with STARTTLS and AUTH), then sending; default 10s
}

// defaultSMTPPort is the usual port for a TLS policy.
func defaultSMTPPort(policy string) int {
	switch policy {
	case smtpTLS:
		return 465
	case smtpSTARTTLS:
		return 587
	}
	return 25
}

// newMailer builds the transport that mail.mode names. It returns a nil
// Mailer (and no error) when mail is not configured; pages that need mail
// then say so. cfg comes validated from loadConfig.
func newMailer(cfg mailConfig, dataDir string, log *slog.Logger) (loginui.Mailer, error) {
	if cfg.Mode == "" {
		return nil, nil
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("mail.from %q is not an address: %w", cfg.From, err)
	}
	switch cfg.Mode {
	case mailModeSMTP:
		if cfg.TLS == "" {
			cfg.TLS = smtpSTARTTLS
		}
		if cfg.Port == 0 {
			cfg.Port = defaultSMTPPort(cfg.TLS)
		}
		if cfg.Timeout <= 0 {
			cfg.Timeout = 10 * time.Second
		}
		if cfg.Host == "" {
			return nil, errors.New("mail.smtp.host is required for mode smtp")
		}
		return &smtpMailer{cfg: cfg, from: from, log: log, now: time.Now}, nil
	case mailModeFile:
		dir := filepath.Join(dataDir, "outbox")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("cannot create the mail outbox: %w", pathError(err))
		}
		return &fileMailer{dir: dir, from: from, log: log, now: time.Now}, nil
	}
	return nil, fmt.Errorf("mail.mode %q is not smtp or file", cfg.Mode)
}

// mailError is a delivery that failed, in words an operator can act on
// ("mail not sent via smtp.example.com:587: the server refused the username
// or password (535 5.7.8 ...)"). Its text never holds the password; Unwrap
// gives the transport's own error for errors.Is and errors.As.
type mailError struct {
	msg string
	err error
}

func (e *mailError) Error() string { return e.msg }
func (e *mailError) Unwrap() error { return e.err }

// newMsg turns a rendered message into a MIME message: multipart/alternative
// with the text part first (RFC 2046 §5.1.4: the preferred part comes last),
// a Date, a Message-ID in the sender's domain, and Auto-Submitted so that
// vacation responders stay quiet (RFC 3834).
func newMsg(from *mail.Address, m loginui.Message, now time.Time) (*gomail.Msg, error) {
	if err := m.Check(); err != nil {
		return nil, err
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(from)
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("%w: %q", loginui.ErrMailHeader, m.To)
	}
	msg.Subject(m.Subject)
	msg.SetDateWithValue(now)
	domain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	msg.SetMessageIDWithValue(randomHex(16) + "@" + domain)
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	return msg, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b)
}

// smtpMailer delivers through an SMTP server, one connection per message.
type smtpMailer struct {
	cfg   mailConfig
	from  *mail.Address
	log   *slog.Logger
	now   func() time.Time
	roots *x509.CertPool // nil: the system's roots (tests trust their own CA)
}

func (s *smtpMailer) addr() string {
	return net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
}

// client is built for each message: a go-mail Client is not safe for
// concurrent sends (it records the chosen AUTH mechanism on itself).
func (s *smtpMailer) client() (*gomail.Client, error) {
	opts := []gomail.Option{
		gomail.WithPort(s.cfg.Port),
		gomail.WithTimeout(s.cfg.Timeout),
		gomail.WithTLSConfig(&tls.Config{ServerName: s.cfg.Host, RootCAs: s.roots, MinVersion: tls.VersionTLS12}),
	}
	switch s.cfg.TLS {
	case smtpTLS:
		opts = append(opts, gomail.WithSSL())
	case smtpOpportunistic:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	case smtpNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if s.cfg.Username != "" {
		// go-mail sends PLAIN and LOGIN only over TLS or to localhost, so a
		// password never crosses the network in the clear.
		opts = append(opts,
			gomail.WithUsername(s.cfg.Username), gomail.WithPassword(s.cfg.Password),
			gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthPlain, gomail.SMTPAuthLogin,
				gomail.SMTPAuthSCRAMSHA256, gomail.SMTPAuthSCRAMSHA1, gomail.SMTPAuthCramMD5))
	}
	return gomail.NewClient(s.cfg.Host, opts...)
}

// Send delivers m and logs the outcome. A failure is returned as a
// *mailError whose text tells the operator what to fix.
func (s *smtpMailer) Send(ctx context.Context, m loginui.Message) error {
	msg, err := newMsg(s.from, m, s.now())
	if err == nil {
		var c *gomail.Client
		if c, err = s.client(); err == nil {
			err = c.DialAndSendWithContext(ctx, msg)
		}
	}
	if err != nil {
		me := &mailError{msg: "mail not sent via " + s.addr() + ": " + s.explain(err, m.To), err: err}
		s.log.Error("mail not sent", "to", m.To, "subject", m.Subject, "server", s.addr(), "err", me.msg)
		return me
	}
	s.log.Info("mail sent", "to", m.To, "subject", m.Subject, "server", s.addr(), "message_id", msg.GetMessageID())
	return nil
}

// explain says in one line why a delivery failed.
func (s *smtpMailer) explain(err error, to string) string {
	var (
		sendErr *gomail.SendError
		reply   *textproto.Error
		dnsErr  *net.DNSError
		opErr   *net.OpError
		certErr *tls.CertificateVerificationError
		record  tls.RecordHeaderError
		alert   tls.AlertError
		netErr  net.Error
	)
	switch {
	case errors.Is(err, loginui.ErrMailHeader):
		return "refused an unsafe recipient or subject: " + err.Error()
	case errors.Is(err, context.Canceled):
		return "cancelled before the mail was sent"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Sprintf("no answer within %s (mail.smtp.timeout)", s.cfg.Timeout)
	case errors.As(err, &sendErr):
		code := ""
		if c := sendErr.ErrorCode(); c != 0 {
			code = fmt.Sprintf(" (%d %s)", c, sendErr.EnhancedStatusCode())
			code = strings.Replace(code, " )", ")", 1)
		}
		later := ""
		if sendErr.IsTemp() {
			later = "; a temporary failure, the user can try again later"
		}
		switch sendErr.Reason {
		case gomail.ErrSMTPRcptTo:
			return "the server refused the recipient " + to + code + later
		case gomail.ErrSMTPMailFrom:
			// RFC 4954 says 530 5.7.0; some servers answer 502 5.7.0.
			if s.cfg.Username == "" && (sendErr.ErrorCode() == 530 || strings.HasPrefix(sendErr.EnhancedStatusCode(), "5.7.")) {
				return "the server wants a username and password (mail.smtp.username, mail.smtp.password)" + code
			}
			return "the server refused the sender " + s.from.Address + " (mail.from)" + code + later
		}
		return "the server refused the message while " + sendErr.Reason.String() + code + later
	case errors.Is(err, gomailsmtp.ErrUnencrypted):
		return "will not send the password over an unencrypted connection (use mail.smtp.tls: starttls or tls)"
	case errors.As(err, &reply):
		text := s.scrub(fmt.Sprintf("%d %s", reply.Code, strings.Map(printable, reply.Msg)))
		switch reply.Code {
		case 535, 534:
			return "the server refused the username or password (" + text + ")"
		case 530:
			return "the server wants a username and password (" + text + ")"
		}
		return "the server answered " + text
	case errors.As(err, &dnsErr):
		return "cannot find " + s.cfg.Host + ": " + dnsErr.Err
	case errors.As(err, &opErr) && opErr.Op == "dial":
		inner := opErr.Err
		var sysErr *os.SyscallError
		if errors.As(inner, &sysErr) {
			inner = sysErr.Err
		}
		return "cannot connect: " + inner.Error()
	case errors.As(err, &certErr):
		return "the server's TLS certificate is not trusted: " + certErr.Err.Error()
	case errors.As(err, &record):
		return "the server does not speak TLS on this port (mail.smtp.tls: tls is for port 465, starttls for 587)"
	case errors.As(err, &alert):
		return "the TLS handshake failed: " + alert.Error()
	}
	// Otherwise go-mail's own words, without its "dial failed: " wrapping
	// (e.g. the server does not offer STARTTLS, or no AUTH).
	for inner := errors.Unwrap(err); inner != nil; inner = errors.Unwrap(err) {
		err = inner
	}
	return s.scrub(err.Error())
}

// printable drops control characters from a server's words.
func printable(r rune) rune {
	if r < 0x20 || r == 0x7f {
		return ' '
	}
	return r
}

// scrub keeps the password out of a message, whatever a server echoes.
func (s *smtpMailer) scrub(msg string) string {
	if s.cfg.Password == "" {
		return msg
	}
	return strings.ReplaceAll(msg, s.cfg.Password, "[password]")
}

// fileMailer writes each message as an .eml file into an outbox directory,
// for development: open the file to follow the link.
type fileMailer struct {
	dir  string
	from *mail.Address
	log  *slog.Logger
	now  func() time.Time
}

// Send writes m to a new file atomically (a temporary file renamed into
// place), readable by the owner only: the links in it are credentials.
func (f *fileMailer) Send(ctx context.Context, m loginui.Message) error {
	name, err := f.write(m)
	if err != nil {
		me := &mailError{msg: "mail not written to the outbox " + f.dir + ": " + err.Error(), err: err}
		f.log.Error("mail not sent", "to", m.To, "subject", m.Subject, "err", me.msg)
		return me
	}
	f.log.Info("mail written to the outbox", "to", m.To, "subject", m.Subject, "file", name)
	return nil
}

func (f *fileMailer) write(m loginui.Message) (string, error) {
	now := f.now()
	msg, err := newMsg(f.from, m, now)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return "", pathError(err)
	}
	tmp, err := os.CreateTemp(f.dir, ".tmp-*") // mode 0600
	if err != nil {
		return "", pathError(err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if _, err := msg.WriteTo(tmp); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", pathError(err)
	}
	if err := tmp.Close(); err != nil {
		return "", pathError(err)
	}
	name := filepath.Join(f.dir, now.UTC().Format("20060102T150405.000000000Z")+"-"+randomHex(8)+".eml")
	if err := os.Rename(tmp.Name(), name); err != nil {
		return "", pathError(err)
	}
	return name, nil
}
