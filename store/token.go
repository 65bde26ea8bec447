package store

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Token purposes. A token opens only what its purpose names: a reset link
// does not verify an email address, an invitation does not reset a password.
const (
	PurposeVerify = "verify" // proves the user reads their Email: see VerifyEmail
	PurposeReset  = "reset"  // lets the user choose a new password without the old one
	PurposeInvite = "invite" // lets an invited user choose their first password
)

// maxTokenLength bounds what ConsumeToken and PeekToken hash: a raw token
// is 43 characters, so anything much longer is not one of ours.
const maxTokenLength = 128

// token is the record of a single-use token, stored under sha256 of the
// raw token, which only the link in the user's mailbox holds.
type token struct {
	Username string    `json:"username"`
	Purpose  string    `json:"purpose"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
}

// errBadToken is returned by CreateToken for a token it cannot issue.
var errBadToken = errors.New("store: a token needs a user, a known purpose and a positive lifetime")

func knownPurpose(p string) bool {
	return p == PurposeVerify || p == PurposeReset || p == PurposeInvite
}

// CreateToken issues a single-use token for an existing user and returns
// it; the database keeps only its sha256, so a copy of the file opens no
// link. raw is 32 bytes from crypto/rand, base64url without padding, fit
// for a URL. It expires ttl after Options.Now. Issuing a token ends every
// earlier token of the same user and purpose, so only the latest link
// mailed works.
//
// Tokens of a user also end when the user is deleted, when their Email
// changes (every purpose: the links went to the old address), and when
// their PasswordHash changes (PurposeReset only; a rehash at sign-in too,
// which is harmless: the user just proved they know the password).
// Disabling a user or marking them Pending keeps their tokens: the code
// that acts on a token checks the account's state, as sign-in does.
// errBadToken for an invalid username, an unknown purpose or ttl <= 0;
// ErrNotFound when there is no such user.
func (db *DB) CreateToken(username, purpose string, ttl time.Duration) (raw string, err error) {
	name, err := CanonicalUsername(username)
	if err != nil || !knownPurpose(purpose) || ttl <= 0 {
		return "", fmt.Errorf("%w (user %q, purpose %q, lifetime %v)", errBadToken, username, purpose, ttl)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("store: crypto/rand: %w", err)
	}
	raw = base64.RawURLEncoding.EncodeToString(b[:])
	now := db.now().UTC()
	t := token{Username: name, Purpose: purpose, Created: now, Expires: now.Add(ttl)}
	data, err := json.Marshal(t)
	if err != nil {
		return "", err
	}
	key := tokenKey(raw)
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketUsers).Get([]byte(name)) == nil {
			return fmt.Errorf("%w: user %q", ErrNotFound, name)
		}
		if err := deleteUserTokens(tx, name, purpose); err != nil {
			return err
		}
		if err := tx.Bucket(bucketTokens).Put(key[:], data); err != nil {
			return err
		}
		idx, err := tx.Bucket(bucketUserTokens).CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return err
		}
		return idx.Put(key[:], []byte(purpose))
	})
	if err != nil {
		return "", err
	}
	return raw, nil
}

// tokenKey is the database key of a raw token.
func tokenKey(raw string) [32]byte { return sha256.Sum256([]byte(raw)) }

// lookupToken finds the live token raw for purpose. A wrong purpose, an
// unknown or expired token, or one whose user is gone, is ErrTokenInvalid;
// dead reports a record that exists but has expired (or lost its user), so
// a write transaction may delete it. The lookup is by hash, so its timing
// says nothing about how close a guess came, and a raw token never needs
// comparing.
func lookupToken(tx *bolt.Tx, raw, purpose string, now time.Time) (t *token, key [32]byte, dead bool, err error) {
	if raw == "" || len(raw) > maxTokenLength || !knownPurpose(purpose) {
		return nil, key, false, ErrTokenInvalid
	}
	key = tokenKey(raw)
	data := tx.Bucket(bucketTokens).Get(key[:])
	if data == nil {
		return nil, key, false, ErrTokenInvalid
	}
	t = new(token)
	if err := json.Unmarshal(data, t); err != nil {
		return nil, key, false, fmt.Errorf("store: token is unreadable: %w", err)
	}
	if t.Purpose != purpose {
		return nil, key, false, ErrTokenInvalid // not consumed: the right form may still use it
	}
	if !now.Before(t.Expires) || tx.Bucket(bucketUsers).Get([]byte(t.Username)) == nil {
		return t, key, true, ErrTokenInvalid
	}
	return t, key, false, nil
}

// ConsumeToken checks the token raw for purpose and deletes it, in one
// transaction, so two requests racing with one link cannot both succeed.
// It returns the user the token was issued to. An unknown, used, expired
// or superseded token, or one issued for another purpose, is
// ErrTokenInvalid; a token of another purpose is left as it was. The
// caller still checks the user's state (Disabled, Pending) before acting.
func (db *DB) ConsumeToken(raw, purpose string) (username string, err error) {
	var ok bool
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		username, ok, err = consumeToken(tx, raw, purpose, db.now())
		return err
	})
	if err != nil {
		return "", err
	}
	if !ok {
		return "", ErrTokenInvalid
	}
	return username, nil
}

// consumeToken is ConsumeToken inside tx: ok is false for an invalid
// token, err only for a failure that must roll tx back. A dead token met
// on the way is deleted, so the caller commits even when !ok.
func consumeToken(tx *bolt.Tx, raw, purpose string, now time.Time) (username string, ok bool, err error) {
	t, key, dead, err := lookupToken(tx, raw, purpose, now)
	switch {
	case dead:
		return "", false, deleteToken(tx, key, t.Username)
	case errors.Is(err, ErrTokenInvalid):
		return "", false, nil
	case err != nil:
		return "", false, err
	}
	if err := deleteToken(tx, key, t.Username); err != nil {
		return "", false, err
	}
	return t.Username, true, nil
}

// PeekToken checks the token raw for purpose like ConsumeToken but leaves
// it in place: for showing the form a link leads to (GET), whose POST then
// consumes the token.
func (db *DB) PeekToken(raw, purpose string) (username string, err error) {
	err = db.bolt.View(func(tx *bolt.Tx) error {
		t, _, _, err := lookupToken(tx, raw, purpose, db.now())
		if err == nil {
			username = t.Username
		}
		return err
	})
	if err != nil {
		return "", err
	}
	return username, nil
}

// VerifyEmail consumes a PurposeVerify token and sets the user's
// EmailVerified, in one transaction, and returns the updated user.
// ErrTokenInvalid as for ConsumeToken, and also when the user has no
// email address any more (the token is then left unused).
func (db *DB) VerifyEmail(raw string) (User, error) {
	var next *User
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		name, ok, err := consumeToken(tx, raw, PurposeVerify, db.now())
		if err != nil || !ok {
			return err // !ok: commit the removal of a dead token, if any
		}
		old, err := getUser(tx, name)
		if err != nil {
			return err
		}
		if old.Email == "" {
			return ErrTokenInvalid // rolls the consumption back
		}
		u := *old
		u.EmailVerified = true
		u.Version = old.Version + 1
		next = &u
		return putUser(tx, old, &u)
	})
	if err != nil {
		return User{}, err
	}
	if next == nil {
		return User{}, ErrTokenInvalid
	}
	db.cacheUser(next)
	return *next, nil
}

// DeleteTokens ends a user's pending tokens of one purpose ("" for every
// purpose), e.g. to withdraw an invitation, and returns how many it ended.
func (db *DB) DeleteTokens(username, purpose string) (int, error) {
	name, err := CanonicalUsername(username)
	if err != nil {
		return 0, fmt.Errorf("%w: user %q", ErrNotFound, username)
	}
	n := 0
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		if idx := tx.Bucket(bucketUserTokens).Bucket([]byte(name)); idx != nil {
			_ = idx.ForEach(func(_, p []byte) error {
				if purpose == "" || string(p) == purpose {
					n++
				}
				return nil
			})
		}
		return deleteUserTokens(tx, name, purpose)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// DeleteExpiredTokens removes every expired token and returns how many.
// Expired tokens are refused anyway; this only keeps the file small.
func (db *DB) DeleteExpiredTokens() (int, error) {
	now := db.now()
	victims, err := db.sweep(bucketTokens, func(_ [32]byte, v []byte) (string, bool) {
		var t token
		if json.Unmarshal(v, &t) != nil || !now.Before(t.Expires) {
			return t.Username, true
		}
		return "", false
	}, deleteToken)
	if err != nil {
		return 0, err
	}
	return len(victims), nil
}

func deleteToken(tx *bolt.Tx, key [32]byte, username string) error {
	if err := tx.Bucket(bucketTokens).Delete(key[:]); err != nil {
		return err
	}
	if idx := tx.Bucket(bucketUserTokens).Bucket([]byte(username)); idx != nil {
		return idx.Delete(key[:])
	}
	return nil
}

// deleteUserTokens deletes username's tokens of purpose ("" for all).
func deleteUserTokens(tx *bolt.Tx, username, purpose string) error {
	users := tx.Bucket(bucketUserTokens)
	idx := users.Bucket([]byte(username))
	if idx == nil {
		return nil
	}
	var keys [][32]byte
	err := idx.ForEach(func(k, p []byte) error {
		if purpose == "" || string(p) == purpose {
			var key [32]byte
			copy(key[:], k)
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := deleteToken(tx, k, username); err != nil {
			return err
		}
	}
	if purpose == "" {
		return users.DeleteBucket([]byte(username))
	}
	return nil
}
