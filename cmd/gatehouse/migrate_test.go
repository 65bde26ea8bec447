package main

import (
	"bytes"
	"encoding/csv"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-auth/gatehouse/store"
)

// testVectorPBKDF2 is Werkzeug's pbkdf2:sha256 hash of "correct horse"
// (store/password_test.go), cheap enough for tests that need any valid hash.
const testVectorPBKDF2 = "pbkdf2:sha256:1000$3LovYrmaXx9MmVd5$53dfc1e15e3cea33e6aaed9f24949540e79b5de7f105f5335db9228b2d778f2c"

// flaskUsers is what testdata/import/flask-app.sql holds: a Flask-SQLAlchemy
// user table with Flask-Security's role tables, its hashes made by
// Werkzeug 3.1's generate_password_hash from these passwords.
var flaskUsers = []struct {
	name, email, password, hashPrefix string
	roles                             []string
}{
	{"alice", "alice@example.com", "alice: correct horse battery", "pbkdf2:sha256:260000$", []string{"admin", "editor"}},
	{"bob", "bob@example.com", "bob: tr0ub4dor&3 staple", "scrypt:32768:8:1$", []string{"reader"}},
	{"carol", "", "carol: 4 words are enough", "pbkdf2:sha256:600000$", nil},
}

// TestImportFlaskSQLiteExport imports testdata/import/flask-users.csv, the
// exact output of docs/migrate.md's sqlite3 command on flask-app.sql, and
// checks that every user can sign in with their old password, twice over
// (a second run updates, never duplicates), and that signing in upgrades
// the hash to argon2id.
func TestImportFlaskSQLiteExport(t *testing.T) {
	t.Setenv("GATEHOUSE_ADMIN_PASSWORD", "")
	cfg := writeE2EConfig(t, t.TempDir(), "")
	const fixture = "testdata/import/flask-users.csv"
	if out := mustCLI(t, "", "user", "import", fixture, "-config", cfg); out != "imported 3 new and updated 0 existing users from flask-users.csv\n" {
		t.Errorf("first import: %q", out)
	}
	if out := mustCLI(t, "", "user", "import", fixture, "-config", cfg); out != "imported 0 new and updated 3 existing users from flask-users.csv\n" {
		t.Errorf("second import: %q", out)
	}

	db := openStore(t, cfg)
	users, err := db.Users()
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != len(flaskUsers) {
		t.Errorf("%d users after two imports, want %d", len(users), len(flaskUsers))
	}
	for _, want := range flaskUsers {
		u, err := db.User(want.name)
		if err != nil {
			t.Errorf("%s: %v", want.name, err)
			continue
		}
		if u.Email != want.email || u.EmailVerified != (want.email != "") || !slices.Equal(u.Roles, want.roles) || u.Disabled || u.Pending {
			t.Errorf("%s imported as %+v", want.name, u)
		}
		if !strings.HasPrefix(u.PasswordHash, want.hashPrefix) {
			t.Errorf("%s: hash %q, want Werkzeug's %q... kept as exported", want.name, u.PasswordHash, want.hashPrefix)
		}
		if ok, rehash, err := store.VerifyPassword(u.PasswordHash, want.password); !ok || !rehash || err != nil {
			t.Errorf("%s: VerifyPassword(old password) = %v, %v, %v; want true, true (to upgrade), nil", want.name, ok, rehash, err)
		}
		if ok, _, _ := store.VerifyPassword(u.PasswordHash, want.password+"x"); ok {
			t.Errorf("%s: a wrong password verifies", want.name)
		}
	}
	db.Close()

	// The first sign-in at the gateway replaces the Werkzeug hash.
	g := startGateway(t, cfg)
	if resp, _ := g.signIn(t, g.client(), "bob@example.com", "bob: tr0ub4dor&3 staple", "/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in with the password from the old app: %d", resp.StatusCode)
	}
	g.stop()
	db = openStore(t, cfg)
	defer db.Close()
	u, err := db.User("bob")
	if err != nil {
		t.Fatal(err)
	}
	if ok, rehash, err := store.VerifyPassword(u.PasswordHash, "bob: tr0ub4dor&3 staple"); !strings.HasPrefix(u.PasswordHash, "$argon2id$") || !ok || rehash || err != nil {
		t.Errorf("after signing in, bob's hash is %.20q... (verifies %v, rehash %v, %v); want a current argon2id hash", u.PasswordHash, ok, rehash, err)
	}
}

// TestMigrateDocsSQLiteQueryMatchesTheFixture runs the sqlite3 command of
// docs/migrate.md on testdata/import/flask-app.sql, so the docs, the fixture
// and the importer cannot drift apart. It needs the sqlite3 shell.
func TestMigrateDocsSQLiteQueryMatchesTheFixture(t *testing.T) {
	sqlite, err := exec.LookPath("sqlite3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("the sqlite3 shell is not installed; scripts/test.sh installs it")
		}
		t.Skip("no sqlite3 shell; run scripts/test.sh, which installs it")
	}
	doc, err := os.ReadFile("../../docs/migrate.md")
	if err != nil {
		t.Fatal(err)
	}
	query := docCommand(t, string(doc), `sqlite3 -header -csv app.db "`)
	schema, err := os.ReadFile("testdata/import/flask-app.sql")
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "app.db")
	load := exec.Command(sqlite, db)
	load.Stdin = bytes.NewReader(schema)
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("loading flask-app.sql: %v\n%s", err, out)
	}
	got, err := exec.Command(sqlite, "-header", "-csv", db, query).Output()
	if err != nil {
		t.Fatalf("the documented query fails: %v\n%s", err, query)
	}
	want, err := os.ReadFile("testdata/import/flask-users.csv")
	if err != nil {
		t.Fatal(err)
	}
	if g, w := csvRows(t, got), csvRows(t, want); !slices.Equal(g, w) {
		t.Errorf("the documented query prints\n%s\nwant (testdata/import/flask-users.csv)\n%s", got, want)
	}
}

// docCommand returns the double-quoted argument that follows prefix in a
// doc, joined into one line.
func docCommand(t *testing.T, doc, prefix string) string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, prefix)
	if !ok {
		t.Fatalf("docs/migrate.md has no %q", prefix)
	}
	query, _, ok := strings.Cut(rest, `"`)
	if !ok {
		t.Fatalf("the %s... command in docs/migrate.md is not closed", prefix)
	}
	return query
}

// csvRows reads CSV into one string per row, each row's roles sorted (the
// order group_concat joins them in is unspecified).
func csvRows(t *testing.T, data []byte) []string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, r := range recs {
		if len(r) == 4 {
			roles := strings.Fields(r[2])
			slices.Sort(roles)
			r[2] = strings.Join(roles, " ")
		}
		rows = append(rows, strings.Join(r, "|"))
	}
	return rows
}
