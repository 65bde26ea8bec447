package loginui

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMailMessages(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Brand = Brand{Title: "Acme Login", Color: "#ffd400"} })
	const (
		link    = "https://app.example.com/.gatehouse/reset?token=abc123&u=bob"
		hostile = `<script>alert(1)</script> "Eve" & co`
	)
	tests := []struct {
		kind, subject, label string
		data                 mailData
		text, html           []string // also wanted, beyond the link and the name
	}{
		{mailVerify, "Confirm your email address for Acme Login", "Confirm email address",
			mailData{Name: hostile, Link: link, Expires: time.Hour},
			[]string{"works for 1 hour"}, []string{"works for 1 hour"}},
		{mailReset, "Reset your Acme Login password", "Choose a new password",
			mailData{Name: hostile, Link: link, Expires: time.Hour, ClientIP: "192.0.2.10"},
			[]string{"at the address 192.0.2.10", "works for 1 hour"}, []string{"<strong>192.0.2.10</strong>"}},
		{mailInvite, "Your Acme Login account: set your password", "Set your password",
			mailData{Name: hostile, Username: "eve", Link: link, Expires: 72 * time.Hour},
			[]string{"username eve", "works for 3 days"}, []string{"<strong>eve</strong>", "works for 3 days"}},
	}
	for _, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			m, err := f.ui.mailMessage(tc.kind, "eve@example.com", tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if m.To != "eve@example.com" || m.Subject != tc.subject {
				t.Errorf("to, subject = %q, %q; want eve@example.com, %q", m.To, m.Subject, tc.subject)
			}
			for _, want := range append([]string{link, "Hello " + hostile + ",", "Acme Login"}, tc.text...) {
				if !strings.Contains(m.Text, want) {
					t.Errorf("text lacks %q:\n%s", want, m.Text)
				}
			}
			escapedLink := strings.ReplaceAll(link, "&", "&amp;")
			for _, want := range append([]string{
				`href="` + escapedLink + `"`, ">" + escapedLink + "</a>", ">" + tc.label + "</a>",
				"Hello &lt;script&gt;alert(1)&lt;/script&gt; &#34;Eve&#34; &amp; co,",
				"<title>" + tc.subject + "</title>", "background:#ffd400", "color:#000000",
			}, tc.html...) {
				if !strings.Contains(m.HTML, want) {
					t.Errorf("HTML lacks %q:\n%s", want, m.HTML)
				}
			}
			for _, bad := range []string{"<script>", "ZgotmplZ", "src=", "<link", "url(", "<style"} {
				if strings.Contains(m.HTML, bad) {
					t.Errorf("HTML holds %q (unescaped input or an external asset):\n%s", bad, m.HTML)
				}
			}
		})
	}
}

// TestMailHeaderInjectionIsRefused pins down header injection: a recipient
// or a subject carrying CR/LF could add a Bcc: line and turn the gateway
// into a spam relay.
func TestMailHeaderInjectionIsRefused(t *testing.T) {
	f := newFixture(t)
	d := mailData{Name: "Bob", Link: "https://app.example.com/x", Expires: time.Hour}
	for _, to := range []string{
		"bob@example.com\r\nBcc: victim@example.net",
		"bob@example.com\nBcc: victim@example.net",
		"bob@example.com\r",
		"Bob <bob@example.com>",
		"bob@example.com, victim@example.net",
		"bob@evil@example.com",
		"",
	} {
		if _, err := f.ui.mailMessage(mailReset, to, d); !errors.Is(err, ErrMailHeader) {
			t.Errorf("to %q: err = %v, want ErrMailHeader", to, err)
		}
	}
	evil := newFixture(t, func(c *Config) { c.Brand.Title = "Acme\r\nBcc: victim@example.net" })
	if _, err := evil.ui.mailMessage(mailVerify, "bob@example.com", d); !errors.Is(err, ErrMailHeader) {
		t.Errorf("subject with CRLF: err = %v, want ErrMailHeader", err)
	}
	for _, m := range []Message{
		{To: "bob@example.com", Subject: "Hi\nBcc: victim@example.net", Text: "t", HTML: "h"},
		{To: "bob@example.com\n", Subject: "Hi", Text: "t", HTML: "h"},
	} {
		if err := m.Check(); !errors.Is(err, ErrMailHeader) {
			t.Errorf("Check(%q, %q) = %v, want ErrMailHeader", m.To, m.Subject, err)
		}
	}
}

func TestMailMessageRefusesBadInput(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name, kind string
		d          mailData
	}{
		{"relative link", mailReset, mailData{Link: "/.gatehouse/reset?token=x", Expires: time.Hour}},
		{"javascript link", mailReset, mailData{Link: "javascript:alert(1)", Expires: time.Hour}},
		{"no expiry", mailReset, mailData{Link: "https://app.example.com/x"}},
		{"unknown kind", "welcome", mailData{Link: "https://app.example.com/x", Expires: time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if m, err := f.ui.mailMessage(tc.kind, "bob@example.com", tc.d); err == nil {
				t.Errorf("mailMessage accepted it: %+v", m)
			}
		})
	}
}

func TestMailExpiryInWords(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Hour: "1 hour", 2 * time.Hour: "2 hours", 24 * time.Hour: "24 hours", 72 * time.Hour: "3 days",
		30 * time.Minute: "30 minutes", time.Minute: "1 minute", 90 * time.Minute: "90 minutes", time.Second: "1 minute",
	} {
		if got := inWords(d); got != want {
			t.Errorf("inWords(%s) = %q, want %q", d, got, want)
		}
	}
}
