package store

import (
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
type User struct {
	Username        string    `json:"username"`        // canonical: see CanonicalUsername
	Email           string    `json:"email,omitempty"` // canonical lower case; unique; "" for none
	DisplayName     string    `json:"display_name,omitempty"`
	PasswordHash    string    `json:"password_hash,omitempty"`
	Roles           []string  `json:"roles,omitempty"` // sorted, unique
	Disabled        bool      `json:"disabled,omitempty"`
	Created         time.Time `json:"created"`
	LastSignIn      time.Time `json:"last_sign_in,omitzero"`
	PasswordChanged time.Time `json:"password_changed,omitzero"`
	FailedLogins    int       `json:"failed_logins,omitempty"` // consecutive failed sign-ins
	LastFailure     time.Time `json:"last_failure,omitzero"`
	LockedUntil     time.Time `json:"locked_until,omitzero"`
	Version         uint64    `json:"version"` // bumped by every change
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
// returned, and visible to every later read.
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

// DeleteUser removes a user and every session of theirs.
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
		if u.Email != "" {
			if err := tx.Bucket(bucketEmails).Delete([]byte(u.Email)); err != nil {
				return err
			}
		}
		if keys, err = deleteUserSessions(tx, name, [32]byte{}); err != nil {
			return err
		}
		return tx.Bucket(bucketUsers).Delete([]byte(name))
	})
	if errors.Is(err, ErrNotFound) {
		return err
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
