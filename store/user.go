package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// User is an account. Values returned by *DB are copies, but Roles is
// shared with the cache: callers must not modify it in place.
//
// Three fields gate what an account may do; the store records them, the
// sign-in and admin code enforce them:
//
//   - Disabled: switched off by an admin. Cannot sign in.
//   - Pending: registered through the sign-up page and waiting for an admin
//     to approve the account (clear Pending). Cannot sign in, and does not
//     count as an admin for ErrLastAdmin. Users created by an admin, the
//     CLI or an import are never pending.
//   - EmailVerified: the owner of Email proved they read it, by following
//     a PurposeVerify link (VerifyEmail sets it). An address an admin typed
//     or imported counts as verified: whoever creates such a user sets it
//     true, and the schema 2 migration set it for every user that had an
//     email before registration existed. Self-registration leaves it false.
//     It is meaningless while Email is "". The store does not clear it when
//     Email changes, because it cannot tell an admin's correction from the
//     user's own change: code that changes Email on the user's behalf
//     clears it in the same UpdateUser. Any change of Email ends the user's
//     pending tokens (see CreateToken), so an old link never vouches for a
//     new address.
type User struct {
	Username        string    `json:"username"`        // canonical: see CanonicalUsername
	Email           string    `json:"email,omitempty"` // canonical lower case; unique; "" for none
	DisplayName     string    `json:"display_name,omitempty"`
	PasswordHash    string    `json:"password_hash,omitempty"`
	Roles           []string  `json:"roles,omitempty"` // sorted, unique
	Disabled        bool      `json:"disabled,omitempty"`
	Pending         bool      `json:"pending,omitempty"`        // awaiting an admin's approval: cannot sign in
	EmailVerified   bool      `json:"email_verified,omitempty"` // Email is known to reach the user
	Created         time.Time `json:"created"`
	LastSignIn      time.Time `json:"last_sign_in,omitzero"`
	PasswordChanged time.Time `json:"password_changed,omitzero"`
	FailedLogins    int       `json:"failed_logins,omitempty"` // consecutive failed sign-ins
	LastFailure     time.Time `json:"last_failure,omitzero"`
	LockedUntil     time.Time `json:"locked_until,omitzero"`
	Version         uint64    `json:"version"` // bumped by every change
}

// AdminRole is the role of the gateway's administrators. The store keeps
// at least one active admin (see ErrLastAdmin) once there is one: an admin
// who demotes, disables or deletes the last admin account, or themself,
// would otherwise lock everyone out of the admin pages until someone with
// shell access runs the CLI.
const AdminRole = "admin"

// activeAdmin reports whether u counts as an admin who can act: role
// AdminRole, not disabled and not pending approval.
func (u *User) activeAdmin() bool {
	return !u.Disabled && !u.Pending && slices.Contains(u.Roles, AdminRole)
}

// otherActiveAdmin reports whether some user other than name is an active
// admin. It reads the transaction, never the cache, so a concurrent change
// cannot slip between the count and the write.
func otherActiveAdmin(tx *bolt.Tx, name string) (bool, error) {
	c := tx.Bucket(bucketUsers).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if string(k) == name || !bytes.Contains(v, []byte(`"`+AdminRole+`"`)) {
			continue // cheap pre-filter: an admin's JSON names the role
		}
		var u User
		if err := json.Unmarshal(v, &u); err != nil {
			return false, fmt.Errorf("store: user %q is unreadable: %w", k, err)
		}
		if u.activeAdmin() {
			return true, nil
		}
	}
	return false, nil
}

// CanonicalUsername trims and lower-cases a username and checks it: 1 to
// 64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or
// digit. ASCII only, so two names that look alike are alike; no '@', so a
// login with an '@' is always an email address.
func CanonicalUsername(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) == 0 || len(s) > 64 {
		return "", ErrBadUsername
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return "", ErrBadUsername
		}
	}
	return s, nil
}

// CanonicalEmail trims and lower-cases an email address and checks it:
// exactly one '@', a non-empty local part and domain, no spaces or control
// characters, at most 254 bytes.
func CanonicalEmail(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") || len(s) > 254 ||
		strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return "", ErrBadEmail
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '<' || r == '>' || r == ',' || r == ';' || r == '"' || r == '\\' {
			return "", ErrBadEmail
		}
	}
	return s, nil
}

func normalizeRoles(roles []string) []string {
	out := make([]string, 0, len(roles))
	for _, r := range roles {
		r = strings.TrimSpace(r)
		if r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

// canonicalize checks and normalizes the fields a caller may set.
func (u *User) canonicalize() error {
	name, err := CanonicalUsername(u.Username)
	if err != nil {
		return fmt.Errorf("%w: %q", err, u.Username)
	}
	u.Username = name
	if u.Email != "" {
		if u.Email, err = CanonicalEmail(u.Email); err != nil {
			return fmt.Errorf("%w: %q", err, u.Email)
		}
	}
	u.Roles = normalizeRoles(u.Roles)
	return nil
}

// CreateUser adds a user. ErrExists when the username or email is taken.
func (db *DB) CreateUser(u User) error {
	if err := u.canonicalize(); err != nil {
		return err
	}
	if u.Created.IsZero() {
		u.Created = db.now().UTC()
	}
	u.Version = 1
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		users := tx.Bucket(bucketUsers)
		if users.Get([]byte(u.Username)) != nil {
			return fmt.Errorf("%w: user %q", ErrExists, u.Username)
		}
		return putUser(tx, nil, &u)
	})
	if err != nil {
		return err
	}
	db.cacheUser(&u)
	return nil
}

// putUser writes u and keeps the email index in step with old (nil for a new user).
func putUser(tx *bolt.Tx, old, u *User) error {
	emails := tx.Bucket(bucketEmails)
	if old != nil && old.Email != "" && old.Email != u.Email {
		if err := emails.Delete([]byte(old.Email)); err != nil {
			return err
		}
	}
	if u.Email != "" && (old == nil || old.Email != u.Email) {
		if owner := emails.Get([]byte(u.Email)); owner != nil && string(owner) != u.Username {
			return fmt.Errorf("%w: email %q", ErrExists, u.Email)
		}
		if err := emails.Put([]byte(u.Email), []byte(u.Username)); err != nil {
			return err
		}
	}
	data, err := json.Marshal(u)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketUsers).Put([]byte(u.Username), data)
}

func getUser(tx *bolt.Tx, name string) (*User, error) {
	data := tx.Bucket(bucketUsers).Get([]byte(name))
	if data == nil {
		return nil, fmt.Errorf("%w: user %q", ErrNotFound, name)
	}
	var u User
	if err := json.Unmarshal(data, &u); err != nil {
		return nil, fmt.Errorf("store: user %q is unreadable: %w", name, err)
	}
	return &u, nil
}

// cacheUser records a user just written.
func (db *DB) cacheUser(u *User) {
	db.mu.Lock()
	db.users[u.Username] = u
	db.gen++
	db.mu.Unlock()
}

// User returns the user with this (not necessarily canonical) name.
func (db *DB) User(username string) (User, error) {
	name, err := CanonicalUsername(username)
	if err != nil {
		return User{}, fmt.Errorf("%w: user %q", ErrNotFound, username)
	}
	db.mu.RLock()
	u, ok := db.users[name]
	gen := db.gen
	db.mu.RUnlock()
	if ok {
		return *u, nil
	}
	err = db.bolt.View(func(tx *bolt.Tx) error {
		u, err = getUser(tx, name)
		return err
	})
	if err != nil {
		return User{}, err
	}
	db.fill(gen, func() { db.users[name] = u })
	return *u, nil
}

// UserByLogin finds a user by email when login holds an '@', else by username.
func (db *DB) UserByLogin(login string) (User, error) {
	if !strings.Contains(login, "@") {
		return db.User(login)
	}
	email, err := CanonicalEmail(login)
	if err != nil {
		return User{}, fmt.Errorf("%w: email %q", ErrNotFound, login)
	}
	var name string
	err = db.bolt.View(func(tx *bolt.Tx) error {
		owner := tx.Bucket(bucketEmails).Get([]byte(email))
		if owner == nil {
			return fmt.Errorf("%w: email %q", ErrNotFound, email)
		}
		name = string(owner)
		return nil
	})
	if err != nil {
		return User{}, err
	}
	return db.User(name)
}

// Users returns every user, sorted by username.
func (db *DB) Users() ([]User, error) {
	var out []User
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
			var u User
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("store: user %q is unreadable: %w", k, err)
			}
			out = append(out, u)
			return nil
		})
	})
	return out, err
}

// CountUsers returns how many users there are.
func (db *DB) CountUsers() (int, error) {
	n := 0
	err := db.bolt.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketUsers).Stats().KeyN
		return nil
	})
	return n, err
}

// UpdateUser changes a user in one transaction. fn may change anything
// but Username; the email index is kept, Version bumped. The new value is
// returned, and visible to every later read. ErrLastAdmin, changing
// nothing, when the change would leave no active admin (see AdminRole).
// A new Email ends all the user's tokens, a new PasswordHash their
// PurposeReset tokens (see CreateToken).
func (db *DB) UpdateUser(username string, fn func(u *User) error) (User, error) {
	name, err := CanonicalUsername(username)
	if err != nil {
		return User{}, fmt.Errorf("%w: user %q", ErrNotFound, username)
	}
	var next *User
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		old, err := getUser(tx, name)
		if err != nil {
			return err
		}
		u := *old
		u.Roles = slices.Clone(old.Roles)
		if err := fn(&u); err != nil {
			return err
		}
		u.Username = old.Username
		if err := u.canonicalize(); err != nil {
			return err
		}
		if old.activeAdmin() && !u.activeAdmin() {
			ok, err := otherActiveAdmin(tx, name)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w (user %q is the last one)", ErrLastAdmin, name)
			}
		}
		switch {
		case u.Email != old.Email: // every link went to the old address
			if err := deleteUserTokens(tx, name, ""); err != nil {
				return err
			}
		case u.PasswordHash != old.PasswordHash: // a reset link has nothing left to do
			if err := deleteUserTokens(tx, name, PurposeReset); err != nil {
				return err
			}
		}
		u.Version = old.Version + 1
		next = &u
		return putUser(tx, old, &u)
	})
	if err != nil {
		return User{}, err // nothing changed: fn worked on a copy
	}
	db.cacheUser(next)
	return *next, nil
}

// DeleteUser removes a user and every session and token of theirs.
// ErrLastAdmin, deleting nothing, when they are the last active admin.
func (db *DB) DeleteUser(username string) error {
	name, err := CanonicalUsername(username)
	if err != nil {
		return fmt.Errorf("%w: user %q", ErrNotFound, username)
	}
	var keys [][32]byte
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		u, err := getUser(tx, name)
		if err != nil {
			return err
		}
		if u.activeAdmin() {
			ok, err := otherActiveAdmin(tx, name)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w (user %q is the last one)", ErrLastAdmin, name)
			}
		}
		if u.Email != "" {
			if err := tx.Bucket(bucketEmails).Delete([]byte(u.Email)); err != nil {
				return err
			}
		}
		if keys, err = deleteUserSessions(tx, name, [32]byte{}); err != nil {
			return err
		}
		if err := deleteUserTokens(tx, name, ""); err != nil {
			return err
		}
		return tx.Bucket(bucketUsers).Delete([]byte(name))
	})
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrLastAdmin) {
		return err // nothing changed
	}
	db.mu.Lock()
	delete(db.users, name)
	for _, k := range keys {
		delete(db.sessions, k)
	}
	db.gen++
	db.mu.Unlock()
	return err
}

// MaxSearchLimit bounds one page of SearchUsers.
const MaxSearchLimit = 200

// SearchUsers returns one page of the users whose username, email or
// display name contains query, ignoring case ("" matches everyone),
// ordered by username, and how many match in all. offset counts matches
// to skip (below 0: none); limit is clamped to 1..MaxSearchLimit.
func (db *DB) SearchUsers(query string, offset, limit int) (users []User, total int, err error) {
	q := strings.ToLower(strings.TrimSpace(query))
	offset = max(offset, 0)
	limit = min(max(limit, 1), MaxSearchLimit)
	err = db.bolt.View(func(tx *bolt.Tx) error {
		// Keys are canonical usernames, ASCII, so bbolt's byte order is
		// username order.
		return tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
			var u User
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("store: user %q is unreadable: %w", k, err)
			}
			if q != "" && !strings.Contains(u.Username, q) && !strings.Contains(u.Email, q) &&
				!strings.Contains(strings.ToLower(u.DisplayName), q) {
				return nil
			}
			if total >= offset && len(users) < limit {
				users = append(users, u)
			}
			total++
			return nil
		})
	})
	if err != nil {
		return nil, 0, err
	}
	return users, total, nil
}
