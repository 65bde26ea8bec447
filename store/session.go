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
	"time"

	bolt "go.etcd.io/bbolt"
)

// Session is a signed-in browser. The store keeps sha256(ID) as the key,
// never the ID itself, so a copy of the database opens no session.
type Session struct {
	ID         string        `json:"-"` // the cookie's secret; from UserSessions: a Handle instead
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

// Handle names a session in lists (account page, admin console) without
// revealing the id that would open it.
func handle(key [32]byte) string { return hex.EncodeToString(key[:16]) }

func (s *Session) expired(now time.Time) bool {
	return !now.Before(s.Expires) || (s.Idle > 0 && !now.Before(s.LastSeen.Add(s.Idle)))
}

// CreateSession stores a new session.
func (db *DB) CreateSession(s Session) error {
	if s.ID == "" || s.Username == "" {
		return errors.New("store: a session needs an id and a user")
	}
	key := sessionKey(s.ID)
	if s.LastSeen.IsZero() {
		s.LastSeen = s.Created
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
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
	db.sessions[key] = &sessionEntry{s: s, persisted: s.LastSeen}
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

// Session returns the live session with this id: ErrNotFound when there is
// none or it has expired (idle or absolute, by Options.Now). An expired
// session is deleted.
func (db *DB) Session(id string) (Session, error) {
	key := sessionKey(id)
	db.mu.RLock()
	e, ok := db.sessions[key]
	var s Session
	if ok {
		s = e.s
	}
	gen := db.gen
	db.mu.RUnlock()
	if !ok {
		err := db.bolt.View(func(tx *bolt.Tx) error {
			got, err := getSession(tx, key)
			if err == nil {
				s = *got
			}
			return err
		})
		if err != nil {
			return Session{}, err
		}
		db.fill(gen, func() { db.sessions[key] = &sessionEntry{s: s, persisted: s.LastSeen} })
	}
	if s.expired(db.now()) {
		_ = db.deleteByKey(key, s.Username)
		return Session{}, fmt.Errorf("%w: session expired", ErrNotFound)
	}
	s.ID = id
	return s, nil
}

// TouchSession records activity at t. It is written to disk at most once
// per TouchInterval per session, so a signed-in request does not wait for
// a disk sync; the in-memory value is always current.
func (db *DB) TouchSession(id string, t time.Time) error {
	key := sessionKey(id)
	db.mu.Lock()
	e, ok := db.sessions[key]
	if !ok {
		db.mu.Unlock()
		if _, err := db.Session(id); err != nil {
			return err
		}
		db.mu.Lock()
		if e, ok = db.sessions[key]; !ok {
			db.mu.Unlock()
			return fmt.Errorf("%w: session", ErrNotFound)
		}
	}
	if t.After(e.s.LastSeen) {
		e.s.LastSeen = t
	}
	due := t.Sub(e.persisted) >= db.touch
	s := e.s
	db.mu.Unlock()
	if !due {
		return nil
	}
	return db.persistTouch(key, s)
}

// persistTouch writes a session's LastSeen if the session still exists.
func (db *DB) persistTouch(key [32]byte, s Session) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketSessions).Get(key[:]) == nil {
			return nil // deleted meanwhile: never resurrect it
		}
		return putSession(tx, key, &s)
	})
	if err != nil {
		return err
	}
	db.mu.Lock()
	if e, ok := db.sessions[key]; ok && s.LastSeen.After(e.persisted) {
		e.persisted = s.LastSeen
	}
	db.mu.Unlock()
	return nil
}

// flushTouches persists activity not yet written (on Close).
func (db *DB) flushTouches() {
	db.mu.RLock()
	var pending []struct {
		key [32]byte
		s   Session
	}
	for k, e := range db.sessions {
		if e.s.LastSeen.After(e.persisted) {
			pending = append(pending, struct {
				key [32]byte
				s   Session
			}{k, e.s})
		}
	}
	db.mu.RUnlock()
	for _, p := range pending {
		_ = db.persistTouch(p.key, p.s)
	}
}

func (db *DB) deleteByKey(key [32]byte, username string) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error { return deleteSession(tx, key, username) })
	db.mu.Lock()
	delete(db.sessions, key)
	db.gen++
	db.mu.Unlock()
	return err
}

// DeleteSession ends a session (sign-out). Deleting a missing session is not an error.
func (db *DB) DeleteSession(id string) error {
	key := sessionKey(id)
	var username string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		s, err := getSession(tx, key)
		if err == nil {
			username = s.Username
		}
		return nil
	})
	if err != nil {
		return err
	}
	return db.deleteByKey(key, username)
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
				s.LastSeen = e.s.LastSeen
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
	return db.deleteByKey(*found, name)
}

// DeleteExpiredSessions removes every expired session and returns how many.
func (db *DB) DeleteExpiredSessions() (int, error) {
	now := db.now()
	type victim struct {
		key  [32]byte
		user string
	}
	var victims []victim
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
			var s Session
			if json.Unmarshal(v, &s) != nil {
				return nil
			}
			var key [32]byte
			copy(key[:], k)
			db.mu.RLock()
			if e, ok := db.sessions[key]; ok {
				s.LastSeen = e.s.LastSeen
			}
			db.mu.RUnlock()
			if s.expired(now) {
				victims = append(victims, victim{key, s.Username})
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, v := range victims {
			if err := deleteSession(tx, v.key, v.user); err != nil {
				return err
			}
		}
		return nil
	})
	db.mu.Lock()
	for _, v := range victims {
		delete(db.sessions, v.key)
	}
	db.gen++
	db.mu.Unlock()
	return len(victims), err
}
