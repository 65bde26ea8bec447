package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-auth/gatehouse/loginui"
	"github.com/gatehouse-auth/gatehouse/store"
)

// maxPasswordLength bounds passwords set from the CLI (NIST SP 800-63B
// asks for room for at least 64; the bound keeps hashing cheap to refuse).
const maxPasswordLength = 1024

// userRequest is one user command, run locally or by the running gateway.
type userRequest struct {
	Verb        string   `json:"verb"`
	Name        string   `json:"name,omitempty"`
	Email       string   `json:"email,omitempty"`
	DisplayName string   `json:"display_name,omitempty"`
	Roles       []string `json:"roles,omitempty"`
	Password    string   `json:"password,omitempty"` // empty: generate one and print it
	ImportName  string   `json:"import_name,omitempty"`
	ImportData  []byte   `json:"import_data,omitempty"`
	MinLength   int      `json:"min_length,omitempty"` // login.password_min_length of the caller's config
}

// offlineAudit records administrative changes made while no gateway runs:
// the same JSON audit line the gateway would log, on stderr.
func offlineAudit(stderr io.Writer) func(event, user string) {
	log := newLogger(stderr, slog.LevelInfo)
	return func(event, user string) {
		log.Info("audit", "event", event, "user", user, "via", "cli")
	}
}

func cmdUser(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"user: say what to do: add, list, show, delete, enable, disable, unlock, roles, passwd or import"}
	}
	verb, args := args[0], args[1:]
	fs := flag.NewFlagSet("user "+verb, flag.ContinueOnError)
	file := configFlag(fs)
	req := userRequest{Verb: verb}
	var roles stringList
	var passwordStdin bool
	var set string
	switch verb {
	case "add":
		fs.StringVar(&req.Email, "email", "", "email address")
		fs.StringVar(&req.DisplayName, "name", "", "display name")
		fs.Var(&roles, "role", "role (repeatable)")
		fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	case "passwd":
		fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	case "roles":
		fs.StringVar(&set, "set", "\x00", "comma-separated roles")
	case "list", "show", "delete", "enable", "disable", "unlock", "import":
	default:
		return usageError{fmt.Sprintf("user: unknown command %q", verb)}
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	want := 1
	if verb == "list" {
		want = 0
	}
	if len(pos) != want {
		if want == 0 {
			return usageError{"user list takes no name"}
		}
		if verb == "import" {
			return usageError{"user import needs one FILE (.csv or .json)"}
		}
		return usageError{fmt.Sprintf("user %s needs one user NAME", verb)}
	}
	if want == 1 {
		req.Name = pos[0]
	}
	cfg, err := requireConfig(*file)
	if err != nil {
		return err
	}
	req.Roles = roles
	req.MinLength = cfg.MinPassword
	if verb == "roles" {
		if set == "\x00" {
			return usageError{"user roles needs -set a,b (or -set \"\" for none)"}
		}
		_ = (*stringList)(&req.Roles).Set(set)
	}
	req.DisplayName = strings.TrimSpace(req.DisplayName)
	if !loginui.ValidDisplayName(req.DisplayName) {
		return usageError{"-name must be one line of at most 128 characters, without direction controls"}
	}
	if r := badRole(req.Roles); r != "" {
		return usageError{fmt.Sprintf("%q is not a role name (letters, digits, '.', '_', ':' and '-', up to 64)", r)}
	}
	if passwordStdin {
		if req.Password, err = readPassword(stdin); err != nil {
			return err
		}
	}
	if verb == "import" {
		req.ImportName = filepath.Base(req.Name)
		if req.ImportData, err = os.ReadFile(req.Name); err != nil {
			return fmt.Errorf("cannot read %v", pathError(err))
		}
	}
	var out string
	err = withStore(cfg,
		func(c *controlClient) (err error) { out, err = c.user(req); return err },
		func(db *store.DB) (err error) { out, err = execUser(db, req, offlineAudit(stderr)); return err })
	fmt.Fprint(stdout, out)
	return err
}

// readPassword reads one line from stdin.
func readPassword(stdin io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(stdin, maxPasswordLength+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("cannot read the password: %w", err)
	}
	p := strings.TrimRight(line, "\r\n")
	if p == "" {
		return "", errors.New("no password on stdin")
	}
	return p, nil
}

func checkPassword(p string, minLength int) error {
	minLength = max(minLength, 8)
	switch n := len([]rune(p)); {
	case n < minLength:
		return fmt.Errorf("the password is too short (at least %d characters)", minLength)
	case len(p) > maxPasswordLength:
		return fmt.Errorf("the password is too long (at most %d bytes)", maxPasswordLength)
	}
	return nil
}

// execUser runs one user command against db and returns what to print.
// audit, when set, records administrative changes.
func execUser(db *store.DB, req userRequest, audit func(event, user string)) (string, error) {
	if audit == nil {
		audit = func(string, string) {}
	}
	name := req.Name
	if req.Verb != "list" && req.Verb != "import" && req.Verb != "held-roles" {
		canon, err := store.CanonicalUsername(name)
		if err != nil {
			return "", fmt.Errorf("%q is not a valid username (lower-case letters, digits, '.', '_' and '-')", name)
		}
		name = canon
	}
	notFound := func(err error) error { return userError(name, err) }
	update := func(event string, fn func(*store.User) error) (string, error) {
		if _, err := db.UpdateUser(name, fn); err != nil {
			return "", notFound(err)
		}
		audit(event, name)
		return "", nil
	}
	switch req.Verb {
	case "add":
		generated := req.Password == ""
		password := req.Password
		if generated {
			password = randomPassword()
		}
		if err := checkPassword(password, req.MinLength); err != nil {
			return "", err
		}
		hash, err := store.HashPassword(password)
		if err != nil {
			return "", err
		}
		// An address the admin typed counts as verified (see store.User).
		u := store.User{Username: name, Email: req.Email, EmailVerified: req.Email != "", DisplayName: req.DisplayName,
			PasswordHash: hash, Roles: normalizeRoles(req.Roles), PasswordChanged: time.Now()}
		if err := db.CreateUser(u); err != nil {
			switch {
			case errors.Is(err, store.ErrExists):
				return "", fmt.Errorf("user %q or email %q already exists", name, req.Email)
			case errors.Is(err, store.ErrBadEmail):
				return "", fmt.Errorf("%q is not an email address", req.Email)
			}
			return "", err
		}
		audit("user_created", name)
		if generated {
			return fmt.Sprintf("created user %s with password: %s\n", name, password), nil
		}
		return fmt.Sprintf("created user %s\n", name), nil
	case "list":
		users, err := db.Users()
		if err != nil {
			return "", err
		}
		return formatUsers(users), nil
	case "show":
		u, err := db.User(name)
		if err != nil {
			return "", notFound(err)
		}
		return formatUser(u), nil
	case "held-roles": // for validate: every role some user has, as JSON
		users, err := db.Users()
		if err != nil {
			return "", err
		}
		var roles []string
		for _, u := range users {
			roles = append(roles, u.Roles...)
		}
		slices.Sort(roles)
		data, err := json.Marshal(slices.Compact(roles))
		return string(data), err
	case "get": // for other commands: the user as JSON
		u, err := db.User(name)
		if err != nil {
			return "", notFound(err)
		}
		u.PasswordHash = ""
		data, err := json.Marshal(u)
		return string(data), err
	case "delete":
		if err := db.DeleteUser(name); err != nil {
			return "", notFound(err)
		}
		audit("user_deleted", name)
		return fmt.Sprintf("deleted user %s\n", name), nil
	case "enable", "disable":
		disabled := req.Verb == "disable"
		// Enabling also approves an account waiting for approval.
		if _, err := update("user_"+req.Verb+"d", func(u *store.User) error { u.Disabled, u.Pending = disabled, u.Pending && disabled; return nil }); err != nil {
			return "", err
		}
		if disabled {
			// Ending the sessions too means enabling the account later
			// does not revive a cookie someone may have copied meanwhile.
			if _, err := db.DeleteUserSessions(name, ""); err != nil {
				return "", err
			}
		}
		return fmt.Sprintf("%sd user %s\n", req.Verb, name), nil
	case "unlock":
		if _, err := update("user_unlocked", func(u *store.User) error {
			u.FailedLogins, u.LockedUntil = 0, time.Time{}
			return nil
		}); err != nil {
			return "", err
		}
		return fmt.Sprintf("unlocked user %s\n", name), nil
	case "roles":
		roles := normalizeRoles(req.Roles)
		if _, err := update("user_roles_changed", func(u *store.User) error { u.Roles = roles; return nil }); err != nil {
			return "", err
		}
		return fmt.Sprintf("user %s now has roles: %s\n", name, rolesText(roles)), nil
	case "passwd":
		generated := req.Password == ""
		password := req.Password
		if generated {
			password = randomPassword()
		}
		if err := checkPassword(password, req.MinLength); err != nil {
			return "", err
		}
		hash, err := store.HashPassword(password)
		if err != nil {
			return "", err
		}
		if _, err := update("password_changed", func(u *store.User) error {
			u.PasswordHash, u.PasswordChanged = hash, time.Now()
			u.FailedLogins, u.LockedUntil = 0, time.Time{}
			return nil
		}); err != nil {
			return "", err
		}
		n, err := db.DeleteUserSessions(name, "")
		if err != nil {
			return "", err
		}
		msg := fmt.Sprintf("changed the password of %s and ended %d session(s)\n", name, n)
		if generated {
			msg = fmt.Sprintf("changed the password of %s to: %s (ended %d session(s))\n", name, password, n)
		}
		return msg, nil
	case "import":
		return importUsers(db, req.ImportName, req.ImportData, audit)
	}
	return "", fmt.Errorf("unknown user command %q", req.Verb)
}

// userError words the store's refusals about user name as one line.
func userError(name string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("no user %q", name)
	case errors.Is(err, store.ErrLastAdmin):
		return fmt.Errorf("%s is the last enabled admin; make another user admin first", name)
	}
	return err
}

// badRole returns the first role that is not a role name (the rule the
// admin console and login.default_roles use: roles travel upstream in a
// comma-separated header), or "".
func badRole(roles []string) string {
	for _, r := range roles {
		if r = strings.TrimSpace(r); r != "" && !loginui.ValidRole(r) {
			return r
		}
	}
	return ""
}

func normalizeRoles(roles []string) []string {
	out := make([]string, 0, len(roles))
	for _, r := range roles {
		if r = strings.TrimSpace(r); r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

func rolesText(roles []string) string {
	if len(roles) == 0 {
		return "(none)"
	}
	return strings.Join(roles, ",")
}

func status(u store.User, now time.Time) string {
	switch {
	case u.Disabled:
		return "disabled"
	case u.Pending:
		return "pending approval"
	case u.LockedUntil.After(now):
		return "locked"
	}
	return "active"
}

func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04")
}

func formatUsers(users []store.User) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tEMAIL\tROLES\tSTATUS\tLAST SIGN-IN")
	now := time.Now()
	for _, u := range users {
		email := u.Email
		if email == "" {
			email = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Username, email, rolesText(u.Roles), status(u, now), when(u.LastSignIn))
	}
	_ = tw.Flush()
	return b.String()
}

func formatUser(u store.User) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("username", u.Username)
	row("email", u.Email)
	if u.Email != "" {
		verified := "no"
		if u.EmailVerified {
			verified = "yes"
		}
		row("email verified", verified)
	}
	row("name", u.DisplayName)
	row("roles", rolesText(u.Roles))
	row("status", status(u, time.Now()))
	row("created", when(u.Created))
	row("last sign-in", when(u.LastSignIn))
	row("password changed", when(u.PasswordChanged))
	row("failed sign-ins", fmt.Sprint(u.FailedLogins))
	_ = tw.Flush()
	return b.String()
}
