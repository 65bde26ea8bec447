package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Errors returned by the store.
var (
	ErrNotFound    = errors.New("store: not found")
	ErrExists      = errors.New("store: already exists")
	ErrInUse       = errors.New("store: database is in use by another process")
	ErrBadUsername = errors.New("store: invalid username")
	ErrBadEmail    = errors.New("store: invalid email address")
	ErrUnknownHash = errors.New("store: unknown password hash format")
	ErrNewerSchema = errors.New("store: database was written by a newer Gatehouse")
	// ErrLastAdmin refuses a change (demotion, disabling, deletion) that
	// would leave no enabled admin to run the gateway: see AdminRole.
	ErrLastAdmin = errors.New("store: refused: no enabled admin would be left")
	// ErrTokenInvalid is every way a token can fail (unknown, used,
	// superseded, expired, another purpose): a link's holder learns no more.
	ErrTokenInvalid = errors.New("store: invalid or expired token")
)

// Bucket names.
var (
	bucketMeta         = []byte("meta")
	bucketUsers        = []byte("users")
	bucketEmails       = []byte("emails")
	bucketSessions     = []byte("sessions")
	bucketUserSessions = []byte("user_sessions")
	bucketTokens       = []byte("tokens")      // sha256(raw token) → token JSON
	bucketUserTokens   = []byte("user_tokens") // username → {sha256(raw token) → purpose}
)

// Options configures Open. The zero value is usable.
type Options struct {
	// Timeout is how long Open waits for another process to release the
	// file before it gives up with ErrInUse. Default 1s.
	Timeout time.Duration
	// Now is the clock that decides session and token expiry. Default time.Now.
	Now func() time.Time
	// TouchInterval is how stale a session's LastSeen may be on disk: a
	// touch writes to disk at most this often per session. Default 1m.
	TouchInterval time.Duration
}

// DB is the Gatehouse database. It keeps the users and sessions it has
// read in memory and updates that copy in the same call that commits a
// change, so it must be the only writer of its file: other processes (the
// CLI) go through the running gateway. Reads return copies; a User's Roles
// slice is shared with the cache and must not be modified in place.
type DB struct {
	bolt       *bolt.DB
	now        func() time.Time
	touchEvery time.Duration

	mu       sync.RWMutex
	gen      uint64                     // bumped by every write; a read fills the cache only if no write came in between
	users    map[string]*User           // by canonical username
	sessions map[[32]byte]*sessionEntry // by sha256(id)
}

// Open opens or creates the database at path (file 0600, parent directory
// 0700) and brings its schema up to date.
func Open(path string, opts Options) (*DB, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.TouchInterval <= 0 {
		opts.TouchInterval = time.Minute
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrInUse, path)
	}
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	db := &DB{bolt: b, now: opts.Now, touchEvery: opts.TouchInterval,
		users: map[string]*User{}, sessions: map[[32]byte]*sessionEntry{}}
	if err := db.migrate(); err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

// Close writes session activity not yet on disk and closes the file.
func (db *DB) Close() error {
	return errors.Join(db.flushTouches(), db.bolt.Close())
}

// fill runs add under the cache lock unless a write happened since gen was
// read: a value read before a write must not overwrite what the write left.
// It reports whether add ran.
func (db *DB) fill(gen uint64, add func()) bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.gen != gen {
		return false
	}
	add()
	return true
}

// Path is the database file.
func (db *DB) Path() string { return db.bolt.Path() }

// Backup writes a consistent copy of the database to w while it stays in use.
func (db *DB) Backup(w io.Writer) (int64, error) {
	var n int64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("store: backup: %w", err)
	}
	return n, nil
}

// BackupFile writes a consistent copy to path (0600, replacing any file
// there), through a synced temporary file in the same directory renamed
// into place, so a failure or crash never leaves half a backup.
func (db *DB) BackupFile(path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".gatehouse-backup-*")
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := db.Backup(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("store: backup: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	// Sync the directory too, or a crash could lose the rename.
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	defer dir.Close()
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	return nil
}

// Check verifies the file's internal consistency.
func (db *DB) Check() error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}

// swept is a record a sweep deleted: its key, and the user whose index
// listed it.
type swept struct {
	key  [32]byte
	user string
}

// sweep deletes, in one transaction, every record of bucket that gone
// says is over (naming the user whose index lists it), through del, which
// also removes it from that index. It returns what it deleted.
func (db *DB) sweep(bucket []byte, gone func(key [32]byte, v []byte) (user string, over bool),
	del func(tx *bolt.Tx, key [32]byte, user string) error) ([]swept, error) {
	var victims []swept
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var key [32]byte
			copy(key[:], k)
			if user, over := gone(key, v); over {
				victims = append(victims, swept{key, user})
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, v := range victims {
			if err := del(tx, v.key, v.user); err != nil {
				return err
			}
		}
		return nil
	})
	return victims, err
}
