package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/gatehouse-auth/gatehouse/loginui"
)

// smtpBackend is a real in-process SMTP server's storage: it accepts AUTH
// PLAIN for one account (when user is set) and records what arrives.
type smtpBackend struct {
	user, pass string // "": no AUTH offered, none required
	rejectRcpt bool   // answer RCPT with 550 5.1.1

	mu   sync.Mutex
	msgs []receivedMail
}

type receivedMail struct {
	from string
	to   []string
	tls  bool
	data []byte
}

func (b *smtpBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &smtpSession{be: b, conn: c}, nil
}

func (b *smtpBackend) received() []receivedMail {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]receivedMail(nil), b.msgs...)
}

type smtpSession struct {
	be     *smtpBackend
	conn   *smtp.Conn
	authed bool
	cur    receivedMail
}

func (s *smtpSession) AuthMechanisms() []string {
	if s.be.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != s.be.user || password != s.be.pass {
			return smtp.ErrAuthFailed
		}
		s.authed = true
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.be.user != "" && !s.authed {
		return smtp.ErrAuthRequired
	}
	s.cur = receivedMail{from: from}
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.be.rejectRcpt {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = data
	_, s.cur.tls = s.conn.TLSConnectionState()
	s.be.mu.Lock()
	s.be.msgs = append(s.be.msgs, s.cur)
	s.be.mu.Unlock()
	return nil
}

func (s *smtpSession) Reset()        { s.cur = receivedMail{} }
func (s *smtpSession) Logout() error { return nil }

// Server TLS modes for startSMTP.
const (
	serverPlain    = "plain"    // no TLS at all
	serverSTARTTLS = "starttls" // offers STARTTLS
	serverTLS      = "tls"      // implicit TLS
)

// startSMTP runs be on 127.0.0.1 and returns its port.
func startSMTP(t *testing.T, be *smtpBackend, mode string, cert tls.Certificate) int {
	t.Helper()
	s := smtp.NewServer(be)
	s.Domain = "localhost"
	s.AllowInsecureAuth = true // the plain-text tests authenticate over 127.0.0.1
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	s.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	switch mode {
	case serverSTARTTLS:
		s.TLSConfig = cfg
	case serverTLS:
		l = tls.NewListener(l, cfg)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(l) }()
	t.Cleanup(func() { s.Close(); <-done })
	return l.Addr().(*net.TCPAddr).Port
}

// testCert is a self-signed certificate for 127.0.0.1 and the pool that
// trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test SMTP"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

const testLink = "https://app.example.com/.gatehouse/reset?token=Zx9_tok&u=bob"

func testMessage() loginui.Message {
	return loginui.Message{
		To:      "bob@example.com",
		Subject: "Réinitialiser your Acme password",
		Text:    "Hello Bob,\n\nopen " + testLink + " within 1 hour.\n",
		HTML:    `<!doctype html><p>Hello Bob,</p><p><a href="` + strings.ReplaceAll(testLink, "&", "&amp;") + `">Choose a new password</a></p>`,
	}
}

// newTestMailer builds a mailer through newMailer, as serve will, logging
// into a buffer.
func newTestMailer(t *testing.T, cfg mailConfig, roots *x509.CertPool) (loginui.Mailer, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	m, err := newMailer(cfg, t.TempDir(), slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if sm, ok := m.(*smtpMailer); ok {
		sm.roots = roots
	}
	return m, logs
}

// checkMail parses a delivered RFC 5322 message and checks the headers and
// both parts of its multipart/alternative body.
func checkMail(t *testing.T, raw []byte, want loginui.Message) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("not an RFC 5322 message: %v\n%s", err, raw)
	}
	h := msg.Header
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil || subject != want.Subject {
		t.Errorf("Subject = %q (%v), want %q", subject, err, want.Subject)
	}
	if from, err := h.AddressList("From"); err != nil || len(from) != 1 || from[0].Address != "noreply@example.com" || from[0].Name != "Acme Login" {
		t.Errorf("From = %q (%v), want Acme Login <noreply@example.com>", h.Get("From"), err)
	}
	if to, err := h.AddressList("To"); err != nil || len(to) != 1 || to[0].Address != want.To {
		t.Errorf("To = %q (%v), want %s", h.Get("To"), err, want.To)
	}
	if id := h.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@example.com>") {
		t.Errorf("Message-ID = %q, want <random@example.com>", id)
	}
	if d, err := h.Date(); err != nil || time.Since(d) > time.Hour || time.Since(d) < -time.Hour {
		t.Errorf("Date = %q (%v)", h.Get("Date"), err)
	}
	if got := h.Get("Auto-Submitted"); got != "auto-generated" {
		t.Errorf("Auto-Submitted = %q", got)
	}
	typ, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || typ != "multipart/alternative" {
		t.Fatalf("Content-Type = %q (%v), want multipart/alternative", h.Get("Content-Type"), err)
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	var types []string
	for {
		p, err := r.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(p) // quoted-printable is decoded by NextPart
		if err != nil {
			t.Fatal(err)
		}
		pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		types = append(types, pt)
		wantLink := testLink
		if pt == "text/html" {
			wantLink = strings.ReplaceAll(testLink, "&", "&amp;")
		}
		if !strings.Contains(string(body), wantLink) {
			t.Errorf("%s part lacks the link %s:\n%s", pt, wantLink, body)
		}
	}
	if strings.Join(types, ",") != "text/plain,text/html" {
		t.Errorf("parts = %v, want text/plain then text/html", types)
	}
}

func TestMailSMTPDelivers(t *testing.T) {
	cert, roots := testCert(t)
	tests := []struct {
		name, policy, server string
		auth, wantTLS        bool
	}{
		{"plain relay with AUTH PLAIN", smtpNone, serverPlain, true, false},
		{"mandatory STARTTLS", smtpSTARTTLS, serverSTARTTLS, true, true},
		{"implicit TLS", smtpTLS, serverTLS, true, true},
		{"opportunistic, offered", smtpOpportunistic, serverSTARTTLS, false, true},
		{"opportunistic, not offered", smtpOpportunistic, serverPlain, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			be := &smtpBackend{}
			cfg := mailConfig{Mode: mailModeSMTP, From: "Acme Login <noreply@example.com>", Host: "127.0.0.1", TLS: tc.policy, Timeout: 5 * time.Second}
			if tc.auth {
				be.user, be.pass = "gatehouse", "s3cret pass"
				cfg.Username, cfg.Password = be.user, be.pass
			}
			cfg.Port = startSMTP(t, be, tc.server, cert)
			m, logs := newTestMailer(t, cfg, roots)
			want := testMessage()
			if err := m.Send(context.Background(), want); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := be.received()
			if len(got) != 1 {
				t.Fatalf("server received %d messages, want 1", len(got))
			}
			if got[0].from != "noreply@example.com" || strings.Join(got[0].to, ",") != "bob@example.com" {
				t.Errorf("envelope = %s -> %v, want noreply@example.com -> bob@example.com", got[0].from, got[0].to)
			}
			if got[0].tls != tc.wantTLS {
				t.Errorf("delivered over TLS = %v, want %v", got[0].tls, tc.wantTLS)
			}
			checkMail(t, got[0].data, want)
			if l := logs.String(); !strings.Contains(l, `"msg":"mail sent"`) || strings.Contains(l, "s3cret") {
				t.Errorf("log lacks the sent line or holds the password:\n%s", l)
			}
		})
	}
}

// TestMailSMTPFailuresAreClear: every failure is an error (the caller keeps
// the account change and shows a page) whose text and log line say what to
// fix, and never holds the password.
func TestMailSMTPFailuresAreClear(t *testing.T) {
	cert, roots := testCert(t)
	const password = "s3cret pass"
	refused := func() int { // a port nobody listens on
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		return port
	}
	silent := func() int { // accepts connections (backlog) and never greets
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l.Addr().(*net.TCPAddr).Port
	}
	tests := []struct {
		name   string
		be     *smtpBackend
		server string
		policy string
		user   string
		pass   string
		roots  *x509.CertPool
		port   func() int
		want   string
	}{
		{name: "wrong password", be: &smtpBackend{user: "gatehouse", pass: "right"}, server: serverPlain, policy: smtpNone,
			user: "gatehouse", pass: password, want: "the server refused the username or password (535 5.7.8 Authentication failed)"},
		{name: "recipient rejected", be: &smtpBackend{rejectRcpt: true}, server: serverPlain, policy: smtpNone,
			want: "the server refused the recipient bob@example.com (550 5.1.1)"},
		{name: "authentication required", be: &smtpBackend{user: "gatehouse", pass: "right"}, server: serverPlain, policy: smtpNone,
			want: "the server wants a username and password"},
		{name: "no STARTTLS offered", be: &smtpBackend{}, server: serverPlain, policy: smtpSTARTTLS,
			want: "does not support STARTTLS"},
		{name: "untrusted certificate", be: &smtpBackend{}, server: serverSTARTTLS, policy: smtpSTARTTLS, roots: x509.NewCertPool(),
			want: "the server's TLS certificate is not trusted"},
		{name: "implicit TLS against a plain port", be: &smtpBackend{}, server: serverPlain, policy: smtpTLS,
			want: "the server does not speak TLS on this port"},
		{name: "connection refused", port: refused, policy: smtpNone, want: "cannot connect: connection refused"},
		{name: "no answer", port: silent, policy: smtpNone, want: "no answer within 300ms (mail.smtp.timeout)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mailConfig{Mode: mailModeSMTP, From: "Acme Login <noreply@example.com>", Host: "127.0.0.1", TLS: tc.policy,
				Username: tc.user, Password: tc.pass, Timeout: 300 * time.Millisecond}
			if tc.port != nil {
				cfg.Port = tc.port()
			} else {
				cfg.Port = startSMTP(t, tc.be, tc.server, cert)
			}
			if tc.roots == nil {
				tc.roots = roots
			}
			m, logs := newTestMailer(t, cfg, tc.roots)
			start := time.Now()
			err := m.Send(context.Background(), testMessage())
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("Send took %s with a 300ms timeout", took)
			}
			t.Logf("error: %v", err)
			wantPrefix := "mail not sent via 127.0.0.1:"
			if !strings.HasPrefix(err.Error(), wantPrefix) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %q, want %q...%q", err, wantPrefix, tc.want)
			}
			var me *mailError
			if !errors.As(err, &me) || me.Unwrap() == nil {
				t.Errorf("error %T does not wrap the transport's error", err)
			}
			l := logs.String()
			if !strings.Contains(l, `"msg":"mail not sent"`) || !strings.Contains(l, tc.want) {
				t.Errorf("log lacks a clear line:\n%s", l)
			}
			if strings.Contains(l+err.Error(), "s3cret") {
				t.Errorf("the password leaked:\n%s\n%s", err, l)
			}
			if tc.be != nil && len(tc.be.received()) != 0 {
				t.Errorf("the server received a message")
			}
		})
	}
}

func TestMailSMTPRefusesHeaderInjection(t *testing.T) {
	cert, roots := testCert(t)
	be := &smtpBackend{}
	cfg := mailConfig{Mode: mailModeSMTP, From: "noreply@example.com", Host: "127.0.0.1", TLS: smtpNone, Timeout: 5 * time.Second}
	cfg.Port = startSMTP(t, be, serverPlain, cert)
	m, _ := newTestMailer(t, cfg, roots)
	msg := testMessage()
	msg.Subject = "Hi\r\nBcc: victim@example.net"
	if err := m.Send(context.Background(), msg); !errors.Is(err, loginui.ErrMailHeader) {
		t.Errorf("Send = %v, want ErrMailHeader", err)
	}
	if n := len(be.received()); n != 0 {
		t.Errorf("server received %d messages", n)
	}
}

func TestMailFileOutbox(t *testing.T) {
	dataDir := t.TempDir()
	logs := &logBuffer{}
	m, err := newMailer(mailConfig{Mode: mailModeFile, From: "Acme Login <noreply@example.com>"}, dataDir, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	want := testMessage()
	for range 2 {
		if err := m.Send(context.Background(), want); err != nil {
			t.Fatal(err)
		}
	}
	outbox := filepath.Join(dataDir, "outbox")
	if fi, err := os.Stat(outbox); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("outbox = %v (%v), want a 0700 directory", fi.Mode(), err)
	}
	entries, err := os.ReadDir(outbox)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("outbox holds %d files, want 2 (unique names, no temporary files left)", len(entries))
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".eml") {
			t.Errorf("file %s is not an .eml", e.Name())
		}
		fi, _ := e.Info()
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600 (it holds a reset link)", e.Name(), fi.Mode().Perm())
		}
		raw, err := os.ReadFile(filepath.Join(outbox, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		checkMail(t, raw, want)
		if !strings.Contains(logs.String(), e.Name()) {
			t.Errorf("log does not name %s:\n%s", e.Name(), logs.String())
		}
	}
}

func TestMailUnsetMeansNoMailer(t *testing.T) {
	m, err := newMailer(mailConfig{}, t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil || m != nil {
		t.Errorf("newMailer(no mode) = %v, %v; want a nil Mailer", m, err)
	}
}

// TestServerPassesANilMailerWhenMailIsOff pins the typed-nil trap: with
// mail off the UI must get a nil loginui.Mailer interface, not an
// interface holding a nil pointer, or it would offer links it cannot send.
func TestServerPassesANilMailerWhenMailIsOff(t *testing.T) {
	for _, tc := range []struct {
		name, mail string
		want       bool
	}{
		{"no mail section", "", false},
		{"file outbox", "mail: {mode: file}\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := writeE2EConfig(t, t.TempDir(), tc.mail+"apps:\n  - host: localhost\n    upstream: echo\n"+e2eRules)
			cfg, err := loadConfig(file)
			if err != nil {
				t.Fatal(err)
			}
			srv, err := newServer(cfg, slog.New(slog.DiscardHandler), nil, time.Now)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.close()
			if got := srv.mailer != nil; got != tc.want {
				t.Errorf("mailer configured = %v (%#v), want %v", got, srv.mailer, tc.want)
			}
		})
	}
}
