package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/store"
)

func TestUserCommandsWithoutAGateway(t *testing.T) {
	cfg := writeE2EConfig(t, t.TempDir(), "")
	out := mustCLI(t, "", "user", "add", "Alice", "-config", cfg, "-email", "Alice@Example.com", "-role", "staff", "-role", "reader,writer")
	if !strings.HasPrefix(out, "created user alice with password: ") {
		t.Errorf("add without -password-stdin: %q", out)
	}
	mustCLI(t, "s3cret-passphrase\n", "user", "passwd", "alice", "-config", cfg, "-password-stdin")
	out = mustCLI(t, "", "user", "list", "-config", cfg)
	if !strings.Contains(out, "alice") || !strings.Contains(out, "alice@example.com") || !strings.Contains(out, "reader,staff,writer") {
		t.Errorf("list:\n%s", out)
	}
	mustCLI(t, "", "user", "add", "root", "-config", cfg, "-role", "admin") // so alice is not the last admin
	mustCLI(t, "", "user", "roles", "ALICE", "-config", cfg, "-set", "admin")
	mustCLI(t, "", "user", "disable", "alice", "-config", cfg)
	out = mustCLI(t, "", "user", "show", "alice", "-config", cfg)
	if !strings.Contains(out, "roles:") || !strings.Contains(out, "admin") || !strings.Contains(out, "disabled") {
		t.Errorf("show:\n%s", out)
	}
	mustCLI(t, "", "user", "enable", "alice", "-config", cfg)
	if _, _, errOut := runCLI(t, "", "user", "unlock", "alice", "-config", cfg); !strings.Contains(errOut, `"msg":"audit","event":"user_unlocked","user":"alice","via":"cli"`) {
		t.Errorf("offline unlock left no audit line: %q", errOut)
	}
	mustCLI(t, "", "user", "delete", "alice", "-config", cfg)
	if code, _, errOut := runCLI(t, "", "user", "show", "alice", "-config", cfg); code != 1 || errOut != "gatehouse: no user \"alice\"\n" {
		t.Errorf("show deleted user: exit %d %q", code, errOut)
	}
}

func TestCLIErrorsAreOneLine(t *testing.T) {
	cfg := writeE2EConfig(t, t.TempDir(), "")
	mustCLI(t, "", "user", "add", "bob", "-config", cfg)
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"unknown verb", "", []string{"frobnicate"}, `gatehouse: unknown command "frobnicate"`},
		{"missing config", "", []string{"user", "list"}, "gatehouse: -config FILE is required"},
		{"missing file", "", []string{"validate", "-config", "/nonexistent/gatehouse.yaml"}, "gatehouse: cannot read config: /nonexistent/gatehouse.yaml: no such file or directory"},
		{"unknown flag", "", []string{"user", "list", "-config", cfg, "-bogus"}, "gatehouse: flag provided but not defined: -bogus"},
		{"no name", "", []string{"user", "add", "-config", cfg}, "gatehouse: user add needs one user NAME"},
		{"duplicate", "", []string{"user", "add", "bob", "-config", cfg}, `gatehouse: user "bob" or email "" already exists`},
		{"bad name", "", []string{"user", "add", "bad name!", "-config", cfg}, `gatehouse: "bad name!" is not a valid username (lower-case letters, digits, '.', '_' and '-')`},
		{"short password", "short\n", []string{"user", "passwd", "bob", "-config", cfg, "-password-stdin"}, "gatehouse: the password is too short (at least 8 characters)"},
		{"empty stdin", "", []string{"user", "passwd", "bob", "-config", cfg, "-password-stdin"}, "gatehouse: no password on stdin"},
		{"bad role", "", []string{"user", "roles", "bob", "-config", cfg, "-set", "staff,ops team"}, `gatehouse: "ops team" is not a role name (letters, digits, '.', '_', ':' and '-', up to 64)`},
		{"bad role on add", "", []string{"user", "add", "carol", "-config", cfg, "-role", "a\"b"}, `gatehouse: "a\"b" is not a role name (letters, digits, '.', '_', ':' and '-', up to 64)`},
		{"bidi in name", "", []string{"user", "add", "carol", "-config", cfg, "-name", "\u202enimda"}, "gatehouse: -name must be one line of at most 128 characters, without direction controls"},
		{"roles without set", "", []string{"user", "roles", "bob", "-config", cfg}, `gatehouse: user roles needs -set a,b (or -set "" for none)`},
		{"unknown user", "", []string{"user", "disable", "nobody", "-config", cfg}, `gatehouse: no user "nobody"`},
		{"policy check args", "", []string{"policy", "check", "-config", cfg, "GET"}, "gatehouse: policy check needs METHOD and URL, e.g. GET https://wiki.example.com/admin"},
		{"backup no out", "", []string{"backup", "-config", cfg}, "gatehouse: backup needs one OUT file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, tc.stdin, tc.args...)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			first := strings.SplitN(errOut, "\n", 2)[0]
			if first != tc.want {
				t.Errorf("stderr first line = %q, want %q", first, tc.want)
			}
			if strings.Contains(errOut, "goroutine") || strings.Contains(errOut, "panic") {
				t.Errorf("stack trace on stderr: %s", errOut)
			}
		})
	}
}

func TestHashPasswordCommand(t *testing.T) {
	out := mustCLI(t, "my password\n", "hash-password")
	if !strings.HasPrefix(out, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash-password printed %q", out)
	}
}

func TestUserCommandsWhileRunningTakeEffectOnTheNextRequest(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GATEHOUSE_ADMIN_PASSWORD", "admin-password-1")
	cfg := writeE2EConfig(t, dir, "")
	g := startGateway(t, cfg)

	// While the gateway holds the database, the CLI goes through the socket.
	mustCLI(t, "carol-password-1\n", "user", "add", "carol", "-config", cfg, "-role", "admin", "-password-stdin")
	c := g.client()
	if resp, _ := g.signIn(t, c, "carol", "carol-password-1", "/admin/x"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	get := func() int {
		resp, _ := do(t, c, "GET", g.https+"/admin/x", nil, "Accept", "application/json")
		return resp.StatusCode
	}
	if s := get(); s != 200 {
		t.Fatalf("admin area as admin: %d", s)
	}
	mustCLI(t, "", "user", "roles", "carol", "-config", cfg, "-set", "staff")
	if s := get(); s != http.StatusForbidden {
		t.Errorf("after losing the admin role: %d, want 403", s)
	}
	mustCLI(t, "", "user", "roles", "carol", "-config", cfg, "-set", "admin")
	mustCLI(t, "", "user", "disable", "carol", "-config", cfg)
	if s := get(); s != http.StatusUnauthorized {
		t.Errorf("disabled user's live session: %d, want 401", s)
	}
	mustCLI(t, "", "user", "enable", "carol", "-config", cfg)
	if s := get(); s != http.StatusUnauthorized {
		t.Errorf("re-enabled user's old session: %d, want 401 (disabling must end it)", s)
	}
	if resp, _ := g.signIn(t, c, "carol", "carol-password-1", "/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in again: %d", resp.StatusCode)
	}
	mustCLI(t, "carol-password-2\n", "user", "passwd", "carol", "-config", cfg, "-password-stdin")
	if s := get(); s != http.StatusUnauthorized {
		t.Errorf("after a password change: %d, want 401", s)
	}
	if resp, _ := g.signIn(t, c, "carol", "carol-password-2", "/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in with the new password: %d", resp.StatusCode)
	}
	mustCLI(t, "", "user", "delete", "carol", "-config", cfg)
	if s := get(); s != http.StatusUnauthorized {
		t.Errorf("deleted user's live session: %d, want 401", s)
	}
	audits := g.logs.logLines(t, "audit")
	events := map[string]bool{}
	for _, a := range audits {
		events[a["event"].(string)] = true
	}
	for _, e := range []string{"user_created", "user_roles_changed", "user_disabled", "password_changed", "user_deleted", "signin"} {
		if !events[e] {
			t.Errorf("no audit event %q in %v", e, events)
		}
	}
}

func TestBackupWhileRunning(t *testing.T) {
	dir := t.TempDir()
	cfg := writeE2EConfig(t, dir, "")
	g := startGateway(t, cfg)
	mustCLI(t, "", "user", "add", "dave", "-config", cfg, "-role", "staff")
	out := filepath.Join(t.TempDir(), "backup.db")
	mustCLI(t, "", "backup", "-config", cfg, out)
	g.stop()

	// The copy is a complete database: a gateway started on it knows dave.
	restored := t.TempDir()
	if err := os.MkdirAll(filepath.Join(restored, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restored, "data", "gatehouse.db"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg2 := writeE2EConfig(t, restored, "")
	if got := mustCLI(t, "", "user", "list", "-config", cfg2); !strings.Contains(got, "dave") {
		t.Errorf("restored backup lacks dave:\n%s", got)
	}
}

func TestSecondGatewayOnTheSameDataDirFailsClearly(t *testing.T) {
	cfg := writeE2EConfig(t, t.TempDir(), "")
	startGateway(t, cfg)
	c, err := loadConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = newServer(c, newLogger(&syncBuffer{}, 0), nil, time.Now)
	if err == nil || !strings.Contains(err.Error(), "is another gatehouse running with this data_dir?") {
		t.Errorf("second gateway: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Error("the second gateway hung instead of failing")
	}
}

func TestSessionsSurviveARestart(t *testing.T) {
	t.Setenv("GATEHOUSE_ADMIN_PASSWORD", "admin-password-1")
	cfg := writeE2EConfig(t, t.TempDir(), "")
	g := startGateway(t, cfg)
	c := g.client()
	if resp, _ := g.signIn(t, c, "admin", "admin-password-1", "/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	g.stop()
	g2 := startGateway(t, cfg)
	// Same cookie jar; the new gateway has new ports but the cookie is per host name.
	resp, _ := do(t, c, "GET", g2.https+"/x", nil, "Accept", "application/json")
	if resp.StatusCode != 200 {
		t.Errorf("after restart: %d, want 200", resp.StatusCode)
	}
}

func TestReloadSwapsRulesAndRefusesBrokenConfigs(t *testing.T) {
	t.Setenv("GATEHOUSE_ADMIN_PASSWORD", "admin-password-1")
	dir := t.TempDir()
	cfg := writeE2EConfig(t, dir, "")
	g := startGateway(t, cfg)
	c := g.client()
	status := func(path string) int {
		resp, _ := do(t, c, "GET", g.https+path, nil, "Accept", "application/json")
		return resp.StatusCode
	}
	if s := status("/public/x"); s != 200 {
		t.Fatalf("public before reload: %d", s)
	}
	writeE2EConfig(t, dir, "apps:\n  - host: localhost\n    upstream: echo\n    rules:\n      - { path: /public/**, deny: true }\n")
	g.srv.reload()
	if s := status("/public/x"); s != http.StatusForbidden {
		t.Errorf("after reload: %d, want 403", s)
	}
	writeE2EConfig(t, dir, "apps:\n  - host: localhost\n    upstream: echo\n    rules:\n      - { path: /public/**, allow: maybe }\n")
	g.srv.reload()
	if s := status("/public/x"); s != http.StatusForbidden {
		t.Errorf("after a broken reload: %d, want the old config's 403", s)
	}
	refused := g.logs.logLines(t, "config reload refused; the previous config keeps serving")
	if len(refused) != 1 || !strings.Contains(refused[0]["err"].(string), "config.yaml:8: allow: \"maybe\" is not public or authenticated") {
		t.Errorf("refused reload log: %v", refused)
	}
}

// TestLastAdminIsRefusedInOneLine: the store refuses to leave no enabled
// admin; the CLI says so in words, exit 1, and changes nothing.
func TestLastAdminIsRefusedInOneLine(t *testing.T) {
	cfg := writeE2EConfig(t, t.TempDir(), "")
	mustCLI(t, "", "user", "add", "alice", "-config", cfg, "-role", "admin,staff")
	const want = "gatehouse: alice is the last enabled admin; make another user admin first\n"
	for _, args := range [][]string{
		{"user", "delete", "alice"},
		{"user", "disable", "Alice"},
		{"user", "roles", "alice", "-set", "staff"},
	} {
		t.Run(args[1], func(t *testing.T) {
			code, out, errOut := runCLI(t, "", append(args, "-config", cfg)...)
			if code != 1 || errOut != want || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and stderr %q", code, out, errOut, want)
			}
		})
	}
	if out := mustCLI(t, "", "user", "show", "alice", "-config", cfg); !strings.Contains(out, "admin,staff") || !strings.Contains(out, "active") {
		t.Errorf("a refused change changed alice:\n%s", out)
	}

	// An import that would demote her is refused the same way.
	file := filepath.Join(t.TempDir(), "users.csv")
	if err := os.WriteFile(file, []byte("username,email,roles,password_hash\nalice,,staff,"+testVectorPBKDF2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "", "user", "import", file, "-config", cfg)
	if code != 1 || !strings.Contains(errOut, "users.csv:2: alice is the last enabled admin; make another user admin first") {
		t.Errorf("import demoting the last admin: exit %d, stderr %q", code, errOut)
	}

	mustCLI(t, "", "user", "add", "bob", "-config", cfg, "-role", "admin")
	mustCLI(t, "", "user", "disable", "alice", "-config", cfg) // bob is an admin now
}

// TestAdminEnteredEmailsCountAsVerified: an address typed by an admin or
// imported from the app being protected counts as verified (see
// store.User.EmailVerified); removing it clears the flag.
// openStore opens the store of a config file, with no gateway running on
// it; the caller closes it.
func openStore(t *testing.T, configFile string) *store.DB {
	t.Helper()
	c, err := loadConfig(configFile)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(c.DBPath(), store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestAdminEnteredEmailsCountAsVerified(t *testing.T) {
	cfg := writeE2EConfig(t, t.TempDir(), "")
	user := func(name string) store.User {
		t.Helper()
		db := openStore(t, cfg)
		defer db.Close()
		u, err := db.User(name)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	mustCLI(t, "", "user", "add", "alice", "-config", cfg, "-email", "Alice@Example.com")
	mustCLI(t, "", "user", "add", "bob", "-config", cfg)
	if u := user("alice"); !u.EmailVerified {
		t.Errorf("user add -email: %+v, want the email verified", u)
	}
	if u := user("bob"); u.EmailVerified {
		t.Errorf("user add without -email: %+v, want nothing verified", u)
	}
	if out := mustCLI(t, "", "user", "show", "alice", "-config", cfg); !strings.Contains(out, "email verified:    yes") {
		t.Errorf("user show does not say the email is verified:\n%s", out)
	}

	file := filepath.Join(t.TempDir(), "users.csv")
	importCSV := func(rows string) {
		t.Helper()
		if err := os.WriteFile(file, []byte("username,email,roles,password_hash\n"+rows), 0o600); err != nil {
			t.Fatal(err)
		}
		mustCLI(t, "", "user", "import", file, "-config", cfg)
	}
	for _, step := range []struct {
		name, rows, user string
		want             bool
	}{
		{"new user", "carol,carol@example.com,,%s\n", "carol", true},
		{"an email added", "bob,bob@example.com,,%s\n", "bob", true},
		{"the email changed", "carol,carol@new.example.com,,%s\n", "carol", true},
		{"the email removed", "carol,,,%s\n", "carol", false},
	} {
		importCSV(fmt.Sprintf(step.rows, testVectorPBKDF2))
		if u := user(step.user); u.EmailVerified != step.want {
			t.Errorf("import, %s: %s has email %q verified=%v, want %v", step.name, step.user, u.Email, u.EmailVerified, step.want)
		}
	}
}

// TestEnableApprovesAPendingRegistration: `user enable` is how an operator
// at the shell approves an account waiting for approval.
func TestEnableApprovesAPendingRegistration(t *testing.T) {
	cfg := writeE2EConfig(t, t.TempDir(), "")
	mustCLI(t, "", "user", "add", "erin", "-config", cfg)
	withDB := func(fn func(db *store.DB)) {
		t.Helper()
		db := openStore(t, cfg)
		defer db.Close()
		fn(db)
	}
	withDB(func(db *store.DB) {
		if _, err := db.UpdateUser("erin", func(u *store.User) error { u.Pending = true; return nil }); err != nil {
			t.Fatal(err)
		}
	})
	if out := mustCLI(t, "", "user", "show", "erin", "-config", cfg); !strings.Contains(out, "pending") {
		t.Errorf("user show does not say erin is pending:\n%s", out)
	}
	mustCLI(t, "", "user", "enable", "erin", "-config", cfg)
	withDB(func(db *store.DB) {
		if u, err := db.User("erin"); err != nil || u.Pending || u.Disabled {
			t.Errorf("after enable: %+v %v", u, err)
		}
	})
}
