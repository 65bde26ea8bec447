package main

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/proxy"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestConfigErrors pins, for each broken config under testdata/config, the
// exact one-line-per-problem message an operator sees (file:line first).
func TestConfigErrors(t *testing.T) {
	files, _ := filepath.Glob("testdata/config/*.yaml")
	if len(files) == 0 {
		t.Fatal("no test configs")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := loadConfig(f)
			if err == nil {
				t.Fatal("loadConfig accepted a broken config")
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("error:\n%s\nwant:\n%s", got, want)
			}
			for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
				if !strings.HasPrefix(line, f+":") {
					t.Errorf("line %q does not start with the file name", line)
				}
			}
		})
	}
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestMinimalConfigGetsDefaults(t *testing.T) {
	f := writeConfig(t, "apps:\n  - host: localhost\n    upstream: echo\n    rules: [{path: /**, allow: authenticated}]\n")
	cfg, err := loadConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPSAddr != ":8443" || cfg.HTTPAddr != ":8080" || cfg.TLS.Mode != proxy.TLSSelfSigned {
		t.Errorf("listen/tls defaults: %q %q %q", cfg.HTTPSAddr, cfg.HTTPAddr, cfg.TLS.Mode)
	}
	if want := filepath.Join(filepath.Dir(f), "data"); cfg.DataDir != want {
		t.Errorf("data_dir = %q, want %q (relative to the config file)", cfg.DataDir, want)
	}
	if cfg.Session.IdleTimeout != time.Hour || cfg.Session.Lifetime != 12*time.Hour || cfg.Session.RememberMe != 720*time.Hour {
		t.Errorf("session defaults: %+v", cfg.Session)
	}
	if cfg.Proxy.Headers != proxy.DefaultHeaders {
		t.Errorf("headers = %+v", cfg.Proxy.Headers)
	}
}

func TestEnvironmentExpansionAndSecretFiles(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("0123456789abcdef0123456789abcdef-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GH_TEST_PORT", "9443")
	t.Setenv("GH_TEST_SECRET_FILE", secretFile)
	t.Setenv("GH_TEST_EMPTY", "")
	f := writeConfig(t, `listen:
  https: ":${GH_TEST_PORT}"
  http: "${GH_TEST_UNSET:-:9080}"
session:
  secret_file: ${GH_TEST_SECRET_FILE}
branding:
  title: "Literal $${NOT_EXPANDED}${GH_TEST_EMPTY}"
apps:
  - host: localhost
    upstream: echo
`)
	cfg, err := loadConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPSAddr != ":9443" || cfg.HTTPAddr != ":9080" {
		t.Errorf("listen = %q %q", cfg.HTTPSAddr, cfg.HTTPAddr)
	}
	if string(cfg.Secret) != "0123456789abcdef0123456789abcdef-from-file" {
		t.Errorf("secret from file = %q", cfg.Secret)
	}
	if cfg.Session.Brand.Title != "Literal ${NOT_EXPANDED}" {
		t.Errorf("title = %q", cfg.Session.Brand.Title)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	cfg, err := loadConfig("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Proxy.Apps) != 1 || cfg.Proxy.Apps[0].Upstream != proxy.EchoUpstream {
		t.Errorf("example apps = %+v, want the echo app", cfg.Proxy.Apps)
	}
}

func TestMailConfig(t *testing.T) {
	const apps = "apps:\n  - host: localhost\n    upstream: echo\n"
	pwFile := filepath.Join(t.TempDir(), "smtp-password")
	if err := os.WriteFile(pwFile, []byte(" pass word \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GH_TEST_SMTP_PASSWORD_FILE", pwFile)
	tests := []struct {
		name, yaml string
		want       mailConfig
	}{
		{"no mail section", "", mailConfig{}},
		{"smtp defaults, password from a file",
			"mail:\n  mode: smtp\n  from: Acme <noreply@example.com>\n  smtp:\n    host: smtp.example.com\n    username: gatehouse\n    password_file: ${GH_TEST_SMTP_PASSWORD_FILE}\n",
			mailConfig{Mode: "smtp", From: "Acme <noreply@example.com>", Host: "smtp.example.com", Port: 587,
				Username: "gatehouse", Password: " pass word ", TLS: "starttls", Timeout: 10 * time.Second}},
		{"implicit TLS on 465",
			"mail:\n  mode: smtp\n  from: noreply@example.com\n  smtp: {host: smtp.example.com, tls: tls, timeout: 3s}\n",
			mailConfig{Mode: "smtp", From: "noreply@example.com", Host: "smtp.example.com", Port: 465, TLS: "tls", Timeout: 3 * time.Second}},
		{"local relay, plain, with a password",
			"mail:\n  mode: smtp\n  from: noreply@example.com\n  smtp: {host: localhost, port: 2525, tls: none, username: u, password: p}\n",
			mailConfig{Mode: "smtp", From: "noreply@example.com", Host: "localhost", Port: 2525, Username: "u", Password: "p", TLS: "none", Timeout: 10 * time.Second}},
		{"file outbox", "mail: {mode: file}\n", mailConfig{Mode: "file", From: "Gatehouse <gatehouse@localhost>"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(writeConfig(t, tc.yaml+apps))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Mail != tc.want {
				t.Errorf("mail = %+v\nwant   %+v", cfg.Mail, tc.want)
			}
		})
	}
}

func TestMailConfigErrors(t *testing.T) {
	const apps = "apps:\n  - host: localhost\n    upstream: echo\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown mode", "mail: {mode: sendmail}\n", `:1: mail.mode: "sendmail" is not a mail mode (smtp or file; leave it out to send no mail)`},
		{"settings without a mode", "mail:\n  from: noreply@example.com\n", ":1: mail.mode: from and smtp are only used with mode smtp or file"},
		{"smtp without from and host", "mail:\n  mode: smtp\n", ":2: mail.mode: mode smtp needs from"},
		{"smtp without host", "mail:\n  mode: smtp\n  from: a@example.com\n", ":2: mail.mode: mode smtp needs smtp.host"},
		{"username without password", "mail:\n  mode: smtp\n  from: a@example.com\n  smtp:\n    host: mx.example.com\n    username: u\n",
			":6: mail.smtp.username: username and password go together"},
		{"password in the clear to a remote host", "mail:\n  mode: smtp\n  from: a@example.com\n  smtp: {host: mx.example.com, tls: none, username: u, password: p}\n",
			":4: mail.smtp.tls: none would send the password unencrypted to mx.example.com"},
		{"bad timeout", "mail:\n  mode: smtp\n  smtp:\n    timeout: fast\n", `:4: mail.smtp.timeout: "fast" is not a duration`},
		{"two @", "mail: {mode: file, from: \"a@b@example.com\"}\n", `:1: mail.from: "a@b@example.com" is not an address`},
		{"unknown key", "mail:\n  mode: smtp\n  smtp:\n    hostname: x\n", `:4: unknown key "hostname" in mail.smtp (known keys: host, password, password_file, port, timeout, tls, username)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(writeConfig(t, tc.yaml+apps))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLoginConfigDefaults(t *testing.T) {
	cfg, err := loadConfig(writeConfig(t, "apps:\n  - host: localhost\n    upstream: echo\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Session
	if s.PasswordMinLength != 8 || cfg.MinPassword != 8 {
		t.Errorf("password minimum = %d (CLI %d), want 8", s.PasswordMinLength, cfg.MinPassword)
	}
	if s.Registration || s.RegistrationApproval || s.DefaultRoles != nil {
		t.Errorf("registration = %v, approval = %v, default roles = %q; want off, off, none", s.Registration, s.RegistrationApproval, s.DefaultRoles)
	}
	if s.TokenTTL != time.Hour || s.InviteTTL != 72*time.Hour {
		t.Errorf("token_ttl = %s, invite_ttl = %s; want 1h, 72h", s.TokenTTL, s.InviteTTL)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings for a minimal config: %v", cfg.Warnings)
	}
}

func TestLoginConfigMapsToLoginUI(t *testing.T) {
	cfg, err := loadConfig(writeConfig(t, `login:
  password_min_length: 12
  registration: true
  registration_approval: true
  default_roles: [staff, reader]
  token_ttl: 30m
  invite_ttl: 168h
mail: { mode: file }
apps:
  - host: localhost
    upstream: echo
`))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Session
	if s.PasswordMinLength != 12 || cfg.MinPassword != 12 {
		t.Errorf("password minimum = %d (CLI %d), want 12", s.PasswordMinLength, cfg.MinPassword)
	}
	if !s.Registration || !s.RegistrationApproval {
		t.Errorf("registration = %v, approval = %v; want both on", s.Registration, s.RegistrationApproval)
	}
	if want := []string{"reader", "staff"}; !slices.Equal(s.DefaultRoles, want) {
		t.Errorf("default roles = %q, want %q", s.DefaultRoles, want)
	}
	if s.TokenTTL != 30*time.Minute || s.InviteTTL != 168*time.Hour {
		t.Errorf("token_ttl = %s, invite_ttl = %s; want 30m, 168h", s.TokenTTL, s.InviteTTL)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings with mail configured: %v", cfg.Warnings)
	}
}

func TestLoginConfigBounds(t *testing.T) {
	const apps = "apps:\n  - host: localhost\n    upstream: echo\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"explicit zero length", "login: {password_min_length: 0}\n", ":1: login.password_min_length: 0 is not between 8 and 128"},
		{"too long", "login: {password_min_length: 129}\n", ":1: login.password_min_length: 129 is not between 8 and 128"},
		{"token_ttl 0", "login: {token_ttl: 0s}\n", ":1: login.token_ttl: 0s is not between 5m and 48h"},
		{"token_ttl above 48h", "login: {token_ttl: 49h}\n", ":1: login.token_ttl: 49h is not between 5m and 48h"},
		{"invite_ttl below 1h", "login: {invite_ttl: 30m}\n", ":1: login.invite_ttl: 30m is not between 1h and 720h"},
		{"role with a comma", "login:\n  default_roles: [\"a,b\"]\n", `:2: login.default_roles[0]: "a,b" is not a role name`},
		{"not a list", "login:\n  default_roles: reader\n", `:2: login.default_roles: "reader" is not a list`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(writeConfig(t, tc.yaml+apps))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
	for _, edge := range []string{"password_min_length: 8", "password_min_length: 128", "token_ttl: 5m", "token_ttl: 48h", "invite_ttl: 1h", "invite_ttl: 720h"} {
		if _, err := loadConfig(writeConfig(t, "login: {"+edge+"}\n"+apps)); err != nil {
			t.Errorf("%s refused: %v", edge, err)
		}
	}
}

// TestRegistrationWithoutMailWarns: a gateway that lets people register but
// cannot mail them works, so validate and serve warn instead of refusing.
func TestRegistrationWithoutMailWarns(t *testing.T) {
	const want = "login.registration without mail: new accounts cannot confirm their email and nobody can reset a password by mail"
	dir := t.TempDir()
	file := writeE2EConfig(t, dir, "login:\n  registration: true\napps:\n  - host: localhost\n    upstream: echo\n"+e2eRules)
	out := mustCLI(t, "", "validate", "-config", file)
	if !strings.Contains(out, "warning: "+file+":5: "+want) {
		t.Errorf("validate did not warn at the registration line:\n%s", out)
	}
	if !strings.HasSuffix(out, file+": ok (1 app)\n") {
		t.Errorf("validate did not end with ok:\n%s", out)
	}
	g := startGateway(t, file)
	warned := false
	for _, line := range g.logs.logLines(t, "config: "+want+" (see docs/configuration.md#mail)") {
		warned = warned || line["at"] == file+":5"
	}
	if !warned {
		t.Errorf("serve did not log the warning:\n%s", g.logs)
	}

	writeE2EConfig(t, dir, "login:\n  registration: true\nmail: {mode: file}\napps:\n  - host: localhost\n    upstream: echo\n"+e2eRules)
	if out := mustCLI(t, "", "validate", "-config", file); strings.Contains(out, "warning") {
		t.Errorf("warning with mail configured:\n%s", out)
	}
}

// TestHSTSDefaults: on with certificates browsers trust, off with the
// local CA (a warning could not be clicked through) and without TLS; an
// explicit setting wins except that off never sends it.
func TestHSTSDefaults(t *testing.T) {
	for _, tc := range []struct {
		tls  string
		want bool
	}{
		{"{ mode: acme, email: ops@example.com }", true},
		{"{ mode: acme, hsts: false }", false},
		{"{ mode: self-signed }", false},
		{"{ mode: self-signed, hsts: true }", true},
		{"{ mode: off }", false},
		{"{ mode: off, hsts: true }", false},
	} {
		f := writeConfig(t, "tls: "+tc.tls+"\napps:\n  - host: app.example.com\n    upstream: echo\n    rules: [{path: /**, allow: authenticated}]\n")
		cfg, err := loadConfig(f)
		if err != nil {
			t.Fatalf("%s: %v", tc.tls, err)
		}
		if cfg.Session.HSTS != tc.want {
			t.Errorf("tls %s: HSTS %v, want %v", tc.tls, cfg.Session.HSTS, tc.want)
		}
	}
}

// TestOnDemandCertificatesOnlyForWildcardApps: the handshake decision of
// tls.mode acme allows exactly one more label under a wildcard app, never
// an exact host (obtained at start-up), a deeper name or an unknown one.
func TestOnDemandCertificatesOnlyForWildcardApps(t *testing.T) {
	f := writeConfig(t, `tls: { mode: acme }
apps:
  - host: wiki.example.com
    upstream: echo
    rules: [{path: /**, allow: authenticated}]
  - host: "*.tools.example.com"
    upstream: echo
    rules: [{path: /**, allow: authenticated}]
`)
	cfg, err := loadConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"grafana.tools.example.com":   true,
		"GRAFANA.tools.example.com.":  true,
		"tools.example.com":           false,
		"a.b.tools.example.com":       false,
		"wiki.example.com":            false,
		"evil.example":                false,
		"grafana.tools.example.com.x": false,
		"":                            false,
	} {
		if got := onDemandAllowed(cfg.Proxy.Policy, name); got != want {
			t.Errorf("onDemandAllowed(%q) = %v, want %v", name, got, want)
		}
	}
}
