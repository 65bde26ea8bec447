package store

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Session is a signed-in browser. The store keeps sha256(ID) as the key,
// never the ID itself, so a copy of the database opens no session.
type Session struct {
	ID         string        `json:"-"` // the cookie's secret; from UserSessions: a handle instead
	Username   string        `json:"username"`
	Created    time.Time     `json:"created"`
	LastSeen   time.Time     `json:"last_seen"`
	Expires    time.Time     `json:"expires"`        // absolute end
	Idle       time.Duration `json:"idle,omitempty"` // idle timeout (0: none)
	Remember   bool          `json:"remember,omitempty"`
	RemoteAddr string        `json:"remote_addr,omitempty"`
	UserAgent  string        `json:"user_agent,omitempty"`
}

// NewSessionID returns a new random session id: 32 bytes from crypto/rand,
// base64url. It panics only if the system's random source fails, when no
// secret can be made safely.
func NewSessionID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("store: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// sessionKey is the database key of a session id, computed without
// allocating for ids of ordinary length.
func sessionKey(id string) [32]byte {
	var buf [64]byte
	if len(id) <= len(buf) {
		n := copy(buf[:], id)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(id))
}

// handle names a session in lists (account page, admin console) without
// revealing the id that would open it.
func handle(key [32]byte) string { return hex.EncodeToString(key[:16]) }

func (s *Session) expired(now time.Time) bool {
	return !now.Before(s.Expires) || (s.Idle > 0 && !now.Before(s.LastSeen.Add(s.Idle)))
}

// sessionEntry is a cached session. s never changes once the entry is in
// the cache, but for LastSeen, which lives in lastSeen so that a touch
// needs no exclusive lock.
type sessionEntry struct {
	s         Session
	lastSeen  atomic.Int64 // UnixNano of the latest activity
	persisted atomic.Int64 // UnixNano of the latest LastSeen written, or being written, to disk
}

func newSessionEntry(s Session) *sessionEntry {
	e := &sessionEntry{s: s}
	e.lastSeen.Store(s.LastSeen.UnixNano())
	e.persisted.Store(s.LastSeen.UnixNano())
	return e
}

// expired is Session.expired with the current LastSeen, without a copy.
func (e *sessionEntry) expired(now time.Time) bool {
	return !now.Before(e.s.Expires) || (e.s.Idle > 0 && now.UnixNano()-e.lastSeen.Load() >= int64(e.s.Idle))
}

// session returns a copy with the current LastSeen.
func (e *sessionEntry) session() Session {
	s := e.s
	s.LastSeen = time.Unix(0, e.lastSeen.Load()).UTC()
	return s
}

// errBadSession is returned by CreateSession for a record it cannot keep.
var errBadSession = errors.New("store: a session needs an id, a user and an expiry")

// CreateSession stores a new session for an existing user. A zero Created
// is Options.Now, a zero LastSeen is Created; times are kept in UTC.
func (db *DB) CreateSession(s Session) error {
	name, err := CanonicalUsername(s.Username)
	if err != nil || s.ID == "" || s.Expires.IsZero() {
		return fmt.Errorf("%w (user %q)", errBadSession, s.Username)
	}
	s.Username = name
	if s.Created.IsZero() {
		s.Created = db.now()
	}
	if s.LastSeen.IsZero() {
		s.LastSeen = s.Created
	}
	s.Created, s.LastSeen, s.Expires = s.Created.UTC(), s.LastSeen.UTC(), s.Expires.UTC()
	key := sessionKey(s.ID)
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketUsers).Get([]byte(s.Username)) == nil {
			return fmt.Errorf("%w: user %q", ErrNotFound, s.Username)
		}
		return putSession(tx, key, &s)
	})
	if err != nil {
		return err
	}
	s.ID = ""
	db.mu.Lock()
	db.sessions[key] = newSessionEntry(s)
	db.gen++
	db.mu.Unlock()
	return nil
}

func putSession(tx *bolt.Tx, key [32]byte, s *Session) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketSessions).Put(key[:], data); err != nil {
		return err
	}
	idx, err := tx.Bucket(bucketUserSessions).CreateBucketIfNotExists([]byte(s.Username))
	if err != nil {
		return err
	}
	return idx.Put(key[:], nil)
}

// getSession reads a session record; ErrNotFound when there is none.
func getSession(tx *bolt.Tx, key [32]byte) (*Session, error) {
	data := tx.Bucket(bucketSessions).Get(key[:])
	if data == nil {
		return nil, fmt.Errorf("%w: session", ErrNotFound)
	}
	var s Session
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("store: session is unreadable: %w", err)
	}
	return &s, nil
}

func deleteSession(tx *bolt.Tx, key [32]byte, username string) error {
	if err := tx.Bucket(bucketSessions).Delete(key[:]); err != nil {
		return err
	}
	if idx := tx.Bucket(bucketUserSessions).Bucket([]byte(username)); idx != nil {
		return idx.Delete(key[:])
	}
	return nil
}

// cachedSession returns the cache entry for key, reading it from disk on
// a miss. The entry is nil when a write raced the read and the cache was
// left alone; the session returned is current either way, expired or not.
func (db *DB) cachedSession(key [32]byte) (*sessionEntry, Session, error) {
	db.mu.RLock()
	e, ok := db.sessions[key]
	gen := db.gen
	db.mu.RUnlock()
	if ok {
		return e, e.session(), nil
	}
	var s Session
	err := db.bolt.View(func(tx *bolt.Tx) error {
		got, err := getSession(tx, key)
		if err == nil {
			s = *got
		}
		return err
	})
	if err != nil {
		return nil, Session{}, err
	}
	if s.LastSeen.IsZero() {
		s.LastSeen = s.Created // a record written without one
	}
	s.LastSeen = s.LastSeen.UTC()
	e = newSessionEntry(s)
	filled := db.fill(gen, func() {
		if cur, ok := db.sessions[key]; ok {
			e = cur // filled by another reader meanwhile
		} else {
			db.sessions[key] = e
		}
	})
	if !filled {
		return nil, s, nil
	}
	return e, e.session(), nil
}

// Session returns the live session with this id: ErrNotFound when there is
// none or it has expired (idle or absolute, by Options.Now). An expired
// session is deleted.
func (db *DB) Session(id string) (Session, error) {
	key := sessionKey(id)
	_, s, err := db.cachedSession(key)
	if err != nil {
		return Session{}, err
	}
	if s.expired(db.now()) {
		_ = db.deleteByKey(key)
		return Session{}, fmt.Errorf("%w: session expired", ErrNotFound)
	}
	s.ID = id
	return s, nil
}

// TouchSession records activity at t. It reaches the disk at most once per
// TouchInterval per session, so a signed-in request does not wait for a
// disk sync; readers of this *DB always see the latest. A session already
// expired at t is not revived: it is deleted and the result is ErrNotFound.
func (db *DB) TouchSession(id string, t time.Time) error {
	_, err := db.touch(sessionKey(id), t)
	return err
}

// UseSession is Session and TouchSession in one lookup, for the path every
// signed-in request takes: the live session with this id, its activity
// recorded at t (which also decides expiry).
func (db *DB) UseSession(id string, t time.Time) (Session, error) {
	s, err := db.touch(sessionKey(id), t)
	if err != nil {
		return Session{}, err
	}
	s.ID = id
	return s, nil
}

// touch records activity at t on the session with this key and returns it
// with the new LastSeen (without its ID).
func (db *DB) touch(key [32]byte, t time.Time) (Session, error) {
	db.mu.RLock()
	e := db.sessions[key]
	db.mu.RUnlock()
	if e == nil {
		var s Session
		var err error
		if e, s, err = db.cachedSession(key); err != nil {
			return Session{}, err
		}
		if e == nil { // a write raced the read, so nothing was cached: straight to disk
			if s.expired(t) {
				_ = db.deleteByKey(key)
				return Session{}, fmt.Errorf("%w: session expired", ErrNotFound)
			}
			if t.After(s.LastSeen) {
				s.LastSeen = t.UTC()
			}
			return s, db.persistTouches(map[[32]byte]int64{key: t.UnixNano()})
		}
	}
	if e.expired(t) {
		_ = db.deleteByKey(key)
		return Session{}, fmt.Errorf("%w: session expired", ErrNotFound)
	}
	n := t.UnixNano()
	for {
		old := e.lastSeen.Load()
		if n <= old || e.lastSeen.CompareAndSwap(old, n) {
			break
		}
	}
	last, persisted := e.lastSeen.Load(), e.persisted.Load()
	if last-persisted < int64(db.touchEvery) || !e.persisted.CompareAndSwap(persisted, last) {
		return e.session(), nil // not due, or another touch is writing it
	}
	if err := db.persistTouches(map[[32]byte]int64{key: last}); err != nil {
		e.persisted.CompareAndSwap(last, persisted) // let a later touch try again
		return Session{}, err
	}
	return e.session(), nil
}

// persistTouches writes LastSeen (UnixNano) of sessions that still exist,
// never moving one back, in one transaction.
func (db *DB) persistTouches(lastSeen map[[32]byte]int64) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		for key, n := range lastSeen {
			s, err := getSession(tx, key)
			if errors.Is(err, ErrNotFound) {
				continue // deleted meanwhile: never resurrect it
			} else if err != nil {
				return err
			}
			if t := time.Unix(0, n).UTC(); t.After(s.LastSeen) {
				s.LastSeen = t
				if err := putSession(tx, key, s); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// flushTouches writes activity not yet on disk (at Close).
func (db *DB) flushTouches() error {
	pending := map[[32]byte]int64{}
	entries := map[[32]byte]*sessionEntry{}
	db.mu.RLock()
	for k, e := range db.sessions {
		if last := e.lastSeen.Load(); last > e.persisted.Load() {
			pending[k], entries[k] = last, e
		}
	}
	db.mu.RUnlock()
	if len(pending) == 0 {
		return nil
	}
	if err := db.persistTouches(pending); err != nil {
		return err
	}
	for k, e := range entries {
		e.persisted.Store(max(e.persisted.Load(), pending[k]))
	}
	return nil
}

// deleteByKey deletes a session and its index entry; a missing one is no error.
func (db *DB) deleteByKey(key [32]byte) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		s, err := getSession(tx, key)
		if errors.Is(err, ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		return deleteSession(tx, key, s.Username)
	})
	db.mu.Lock()
	delete(db.sessions, key)
	db.gen++
	db.mu.Unlock()
	return err
}

// DeleteSession ends a session (sign-out). Deleting a missing session is not an error.
func (db *DB) DeleteSession(id string) error {
	return db.deleteByKey(sessionKey(id))
}

// deleteUserSessions deletes every session of username but except (zero: none).
func deleteUserSessions(tx *bolt.Tx, username string, except [32]byte) ([][32]byte, error) {
	idx := tx.Bucket(bucketUserSessions).Bucket([]byte(username))
	if idx == nil {
		return nil, nil
	}
	var keys [][32]byte
	err := idx.ForEach(func(k, _ []byte) error {
		var key [32]byte
		copy(key[:], k)
		if key != except {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := deleteSession(tx, k, username); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// DeleteUserSessions ends every session of a user except the one with id
// exceptID ("" for none), and returns how many it ended.
func (db *DB) DeleteUserSessions(username, exceptID string) (int, error) {
	name, err := CanonicalUsername(username)
	if err != nil {
		return 0, fmt.Errorf("%w: user %q", ErrNotFound, username)
	}
	var except [32]byte
	if exceptID != "" {
		except = sessionKey(exceptID)
	}
	var keys [][32]byte
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		keys, err = deleteUserSessions(tx, name, except)
		return err
	})
	db.mu.Lock()
	for k, e := range db.sessions {
		if e.s.Username == name && k != except {
			delete(db.sessions, k)
		}
	}
	db.gen++
	db.mu.Unlock()
	return len(keys), err
}

// UserSessions lists a user's live sessions, newest first. Their ID field
// holds a handle for DeleteSessionByHandle, never the cookie's id.
func (db *DB) UserSessions(username string) ([]Session, error) {
	name, err := CanonicalUsername(username)
	if err != nil {
		return nil, fmt.Errorf("%w: user %q", ErrNotFound, username)
	}
	now := db.now()
	var out []Session
	err = db.bolt.View(func(tx *bolt.Tx) error {
		idx := tx.Bucket(bucketUserSessions).Bucket([]byte(name))
		if idx == nil {
			return nil
		}
		return idx.ForEach(func(k, _ []byte) error {
			var key [32]byte
			copy(key[:], k)
			s, err := getSession(tx, key)
			if err != nil {
				return nil // index entry without a session: skip
			}
			db.mu.RLock()
			if e, ok := db.sessions[key]; ok {
				s.LastSeen = e.session().LastSeen
			}
			db.mu.RUnlock()
			if !s.expired(now) {
				s.ID = handle(key)
				out = append(out, *s)
			}
			return nil
		})
	})
	slices.SortFunc(out, func(a, b Session) int { return b.Created.Compare(a.Created) })
	return out, err
}

// DeleteSessionByHandle ends the session with this handle if it belongs to username.
func (db *DB) DeleteSessionByHandle(username, h string) error {
	name, err := CanonicalUsername(username)
	if err != nil {
		return fmt.Errorf("%w: user %q", ErrNotFound, username)
	}
	var found *[32]byte
	err = db.bolt.View(func(tx *bolt.Tx) error {
		idx := tx.Bucket(bucketUserSessions).Bucket([]byte(name))
		if idx == nil {
			return nil
		}
		return idx.ForEach(func(k, _ []byte) error {
			var key [32]byte
			copy(key[:], k)
			if handle(key) == h {
				found = &key
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	if found == nil {
		return fmt.Errorf("%w: session", ErrNotFound)
	}
	return db.deleteByKey(*found)
}

// DeleteExpiredSessions removes every expired session and returns how many.
func (db *DB) DeleteExpiredSessions() (int, error) {
	now := db.now()
	victims, err := db.sweep(bucketSessions, func(key [32]byte, v []byte) (string, bool) {
		var s Session
		if json.Unmarshal(v, &s) != nil {
			return "", false
		}
		db.mu.RLock()
		if e, ok := db.sessions[key]; ok {
			s.LastSeen = e.session().LastSeen
		}
		db.mu.RUnlock()
		return s.Username, s.expired(now)
	}, deleteSession)
	db.mu.Lock()
	for _, v := range victims {
		delete(db.sessions, v.key)
	}
	db.gen++
	db.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return len(victims), nil
}

// CountSessions returns how many sessions the store holds, expired ones
// not yet purged (DeleteExpiredSessions) included. It reads no record, so
// a metrics scrape may call it often.
func (db *DB) CountSessions() (int, error) {
	n := 0
	err := db.bolt.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketSessions).Stats().KeyN
		return nil
	})
	return n, err
}
