package store

import (
	"encoding/json"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// schemaVersion is the layout this code writes.
const schemaVersion = 2

// migrations[i] turns a version-i database into version i+1. They run in
// one transaction at Open: a database is either fully migrated or untouched.
var migrations = []func(tx *bolt.Tx) error{
	// 0 → 1: the first release's layout. A version-0 file (from before
	// versions were recorded) has users but no email index.
	func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketUsers, bucketEmails, bucketSessions, bucketUserSessions} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		users, emails := tx.Bucket(bucketUsers), tx.Bucket(bucketEmails)
		respelled := map[string]*User{} // written after the walk: ForEach forbids writes to its bucket
		err := users.ForEach(func(k, v []byte) error {
			var u User
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("user %q is unreadable: %w", k, err)
			}
			if u.Email == "" {
				return nil
			}
			email, err := CanonicalEmail(u.Email)
			if err != nil {
				return fmt.Errorf("user %q: %w: %q", k, err, u.Email)
			}
			if owner := emails.Get([]byte(email)); owner != nil {
				return fmt.Errorf("users %q and %q: %w: email %q", owner, k, ErrExists, email)
			}
			if email != u.Email {
				u.Email = email
				respelled[string(k)] = &u
			}
			return emails.Put([]byte(email), k)
		})
		if err != nil {
			return err
		}
		for k, u := range respelled {
			data, err := json.Marshal(u)
			if err != nil {
				return err
			}
			if err := users.Put([]byte(k), data); err != nil {
				return err
			}
		}
		return nil
	},
	// 1 → 2: single-use tokens (verification, reset, invitation links), and
	// User.EmailVerified. Every address so far was typed or imported by an
	// admin, and those count as verified: without this, turning on a rule
	// that wants a verified address would shut out every existing user.
	func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketTokens, bucketUserTokens} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		users := tx.Bucket(bucketUsers)
		verified := map[string][]byte{} // written after the walk: ForEach forbids writes to its bucket
		err := users.ForEach(func(k, v []byte) error {
			var u User
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("user %q is unreadable: %w", k, err)
			}
			if u.Email == "" || u.EmailVerified {
				return nil
			}
			u.EmailVerified = true
			data, err := json.Marshal(&u)
			if err != nil {
				return err
			}
			verified[string(k)] = data
			return nil
		})
		if err != nil {
			return err
		}
		for k, data := range verified {
			if err := users.Put([]byte(k), data); err != nil {
				return err
			}
		}
		return nil
	},
}

func (db *DB) migrate() error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		version := 0
		if v := meta.Get([]byte("schema")); v != nil {
			if version, err = strconv.Atoi(string(v)); err != nil {
				return fmt.Errorf("store: unreadable schema version %q", v)
			}
		}
		if version > schemaVersion {
			return fmt.Errorf("%w (schema %d, this version reads up to %d)", ErrNewerSchema, version, schemaVersion)
		}
		for ; version < schemaVersion; version++ {
			if err := migrations[version](tx); err != nil {
				return fmt.Errorf("store: migrating the schema from version %d: %w", version, err)
			}
		}
		return meta.Put([]byte("schema"), []byte(strconv.Itoa(schemaVersion)))
	})
}

// SchemaVersion returns the schema version recorded in the file.
func (db *DB) SchemaVersion() (int, error) {
	var v int
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		v, err = strconv.Atoi(string(tx.Bucket(bucketMeta).Get([]byte("schema"))))
		return err
	})
	return v, err
}
