package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock { return &clock{t: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)} }

// openTest opens a database under t.TempDir() and checks its consistency
// when the test ends.
func openTest(t *testing.T, c *clock) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	db := openAt(t, path, c)
	return db, path
}

func openAt(t *testing.T, path string, c *clock) *DB {
	t.Helper()
	opts := Options{Timeout: 200 * time.Millisecond}
	if c != nil {
		opts.Now = c.now
	}
	db, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Check(); err != nil && !strings.Contains(err.Error(), "database not open") {
			t.Errorf("consistency check: %v", err)
		}
		db.Close()
	})
	return db
}

func mustCreate(t *testing.T, db *DB, u User) {
	t.Helper()
	if err := db.CreateUser(u); err != nil {
		t.Fatal(err)
	}
}

func TestCanonicalNames(t *testing.T) {
	db, _ := openTest(t, nil)
	mustCreate(t, db, User{Username: " Alice ", Email: "Alice@Example.COM", Roles: []string{"b", "a", "a", " "}})
	for _, login := range []string{"alice", "ALICE", " Alice", "alice@example.com", "ALICE@EXAMPLE.COM "} {
		u, err := db.UserByLogin(login)
		if err != nil || u.Username != "alice" {
			t.Errorf("UserByLogin(%q) = %q, %v; want alice", login, u.Username, err)
		}
	}
	u, _ := db.User("alice")
	if u.Email != "alice@example.com" || strings.Join(u.Roles, ",") != "a,b" {
		t.Errorf("stored email %q roles %q", u.Email, u.Roles)
	}
	for _, bad := range []string{"", "a b", "al@ice", "-x", strings.Repeat("a", 65), "ünïcode", "a/b"} {
		if _, err := CanonicalUsername(bad); !errors.Is(err, ErrBadUsername) {
			t.Errorf("CanonicalUsername(%q) = %v, want ErrBadUsername", bad, err)
		}
	}
	for _, bad := range []string{"a", "a@b@c", "@b", "a@", "a b@c", "a@b..c", "a@.b", "<a>@b", "a@b\x00"} {
		if _, err := CanonicalEmail(bad); !errors.Is(err, ErrBadEmail) {
			t.Errorf("CanonicalEmail(%q) = %v, want ErrBadEmail", bad, err)
		}
	}
}

func TestUniqueNamesAndEmails(t *testing.T) {
	db, _ := openTest(t, nil)
	mustCreate(t, db, User{Username: "alice", Email: "alice@example.com"})
	mustCreate(t, db, User{Username: "bob", Email: "bob@example.com"})
	if err := db.CreateUser(User{Username: "ALICE"}); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate username: %v", err)
	}
	if err := db.CreateUser(User{Username: "carol", Email: "ALICE@example.com"}); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate email: %v", err)
	}
	if _, err := db.UpdateUser("bob", func(u *User) error { u.Email = "alice@example.com"; return nil }); !errors.Is(err, ErrExists) {
		t.Errorf("update to a taken email: %v", err)
	}
	if u, _ := db.User("bob"); u.Email != "bob@example.com" {
		t.Errorf("failed update changed bob's email to %q", u.Email)
	}
	if _, err := db.UpdateUser("bob", func(u *User) error { u.Email = "robert@example.com"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UserByLogin("bob@example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("old email still resolves: %v", err)
	}
	mustCreate(t, db, User{Username: "carol", Email: "bob@example.com"})
	if n, _ := db.CountUsers(); n != 3 {
		t.Errorf("CountUsers = %d", n)
	}
}

func TestChangesAreVisibleOnTheNextRead(t *testing.T) {
	db, _ := openTest(t, nil)
	mustCreate(t, db, User{Username: "alice", Roles: []string{"admin"}})
	if u, _ := db.User("alice"); u.Roles[0] != "admin" || u.Version != 1 {
		t.Fatalf("initial %+v", u)
	}
	if _, err := db.UpdateUser("alice", func(u *User) error { u.Roles = []string{"staff"}; u.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	u, _ := db.User("alice")
	if !u.Disabled || u.Roles[0] != "staff" || u.Version != 2 {
		t.Errorf("after update %+v", u)
	}
	if err := db.DeleteUser("alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.User("alice"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted user still readable: %v", err)
	}
	if err := db.DeleteUser("alice"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete twice: %v", err)
	}
}

func TestCacheNeverRevivesAChangedUser(t *testing.T) {
	db, _ := openTest(t, nil)
	mustCreate(t, db, User{Username: "alice"})
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			db.mu.Lock()
			delete(db.users, "alice")
			db.mu.Unlock()
			_, _ = db.User("alice")
		}()
		go func() {
			defer wg.Done()
			_, _ = db.UpdateUser("alice", func(u *User) error { u.FailedLogins++; return nil })
		}()
	}
	wg.Wait()
	cached, _ := db.User("alice")
	var onDisk User
	_ = db.bolt.View(func(tx *bolt.Tx) error { u, err := getUser(tx, "alice"); onDisk = *u; return err })
	if cached.Version != onDisk.Version || cached.FailedLogins != 200 {
		t.Errorf("cache version %d failures %d, disk version %d", cached.Version, cached.FailedLogins, onDisk.Version)
	}
}

func TestSessionExpiry(t *testing.T) {
	c := newClock()
	db, _ := openTest(t, c)
	mustCreate(t, db, User{Username: "alice"})
	newSession := func(idle, life time.Duration) string {
		id := NewSessionID()
		if err := db.CreateSession(Session{ID: id, Username: "alice", Created: c.now(), Expires: c.now().Add(life), Idle: idle}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	idle := newSession(time.Hour, 12*time.Hour)
	c.add(50 * time.Minute)
	if _, err := db.Session(idle); err != nil {
		t.Fatalf("live session: %v", err)
	}
	if err := db.TouchSession(idle, c.now()); err != nil {
		t.Fatal(err)
	}
	c.add(50 * time.Minute) // 100 minutes after creation, 50 after the touch
	if _, err := db.Session(idle); err != nil {
		t.Fatalf("touched session expired early: %v", err)
	}
	c.add(61 * time.Minute)
	if _, err := db.Session(idle); !errors.Is(err, ErrNotFound) {
		t.Errorf("idle session still valid: %v", err)
	}

	absolute := newSession(time.Hour, 2*time.Hour)
	for i := 0; i < 4; i++ {
		c.add(30 * time.Minute)
		_ = db.TouchSession(absolute, c.now())
	}
	if _, err := db.Session(absolute); !errors.Is(err, ErrNotFound) {
		t.Errorf("session past its absolute lifetime is valid: %v", err)
	}
	if _, err := db.Session("never-issued"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
}

func TestTouchSurvivesARestart(t *testing.T) {
	c := newClock()
	db, path := openTest(t, c)
	mustCreate(t, db, User{Username: "alice"})
	id := NewSessionID()
	if err := db.CreateSession(Session{ID: id, Username: "alice", Created: c.now(), Expires: c.now().Add(24 * time.Hour), Idle: time.Hour}); err != nil {
		t.Fatal(err)
	}
	c.add(30 * time.Second)
	_ = db.TouchSession(id, c.now()) // within TouchInterval: memory only
	c.add(5 * time.Minute)
	_ = db.TouchSession(id, c.now()) // persisted
	want := c.now()
	c.add(10 * time.Second)
	_ = db.TouchSession(id, c.now()) // memory only, flushed at Close
	last := c.now()
	db.Close()
	db2 := openAt(t, path, c)
	s, err := db2.Session(id)
	if err != nil {
		t.Fatal(err)
	}
	if !s.LastSeen.Equal(last) || s.LastSeen.Before(want) {
		t.Errorf("LastSeen after restart = %v, want %v", s.LastSeen, last)
	}
}

func TestSessionsEndWithTheirUser(t *testing.T) {
	c := newClock()
	db, _ := openTest(t, c)
	mustCreate(t, db, User{Username: "alice"})
	mustCreate(t, db, User{Username: "bob"})
	var ids []string
	for _, who := range []string{"alice", "alice", "alice", "bob"} {
		id := NewSessionID()
		ids = append(ids, id)
		if err := db.CreateSession(Session{ID: id, Username: who, Created: c.now(), Expires: c.now().Add(time.Hour), UserAgent: "test"}); err != nil {
			t.Fatal(err)
		}
		c.add(time.Second)
	}
	list, _ := db.UserSessions("alice")
	if len(list) != 3 {
		t.Fatalf("alice has %d sessions", len(list))
	}
	for _, s := range list {
		for _, id := range ids {
			if s.ID == id {
				t.Error("UserSessions revealed a session id")
			}
		}
	}
	if err := db.DeleteSessionByHandle("bob", list[0].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob ended alice's session: %v", err)
	}
	if err := db.DeleteSessionByHandle("alice", list[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Session(ids[2]); !errors.Is(err, ErrNotFound) {
		t.Error("session ended by handle still valid (newest first)")
	}
	if n, _ := db.DeleteUserSessions("alice", ids[0]); n != 1 {
		t.Errorf("DeleteUserSessions ended %d, want 1", n)
	}
	if _, err := db.Session(ids[0]); err != nil {
		t.Errorf("the kept session ended: %v", err)
	}
	if err := db.DeleteUser("alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Session(ids[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted user's session still valid: %v", err)
	}
	if _, err := db.Session(ids[3]); err != nil {
		t.Errorf("bob's session ended too: %v", err)
	}
	if err := db.CreateSession(Session{ID: NewSessionID(), Username: "alice", Expires: c.now().Add(time.Hour)}); !errors.Is(err, ErrNotFound) {
		t.Errorf("session for a deleted user: %v", err)
	}
}

func TestDeleteExpiredSessions(t *testing.T) {
	c := newClock()
	db, _ := openTest(t, c)
	mustCreate(t, db, User{Username: "alice"})
	short, long := NewSessionID(), NewSessionID()
	_ = db.CreateSession(Session{ID: short, Username: "alice", Created: c.now(), Expires: c.now().Add(time.Hour)})
	_ = db.CreateSession(Session{ID: long, Username: "alice", Created: c.now(), Expires: c.now().Add(48 * time.Hour)})
	c.add(2 * time.Hour)
	if n, err := db.DeleteExpiredSessions(); n != 1 || err != nil {
		t.Errorf("DeleteExpiredSessions = %d, %v", n, err)
	}
	if _, err := db.Session(long); err != nil {
		t.Errorf("live session purged: %v", err)
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	_, path := openTest(t, nil)
	start := time.Now()
	_, err := Open(path, Options{Timeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open: %v, want ErrInUse", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("second Open hung")
	}
}

func TestBackupWhileOpen(t *testing.T) {
	db, _ := openTest(t, nil)
	mustCreate(t, db, User{Username: "alice", Email: "a@example.com"})
	out := filepath.Join(t.TempDir(), "copy.db")
	if err := db.BackupFile(out); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %v", fi.Mode().Perm())
	}
	cp := openAt(t, out, nil)
	if u, err := cp.UserByLogin("a@example.com"); err != nil || u.Username != "alice" {
		t.Errorf("backup lacks alice: %v", err)
	}
}

func TestMigrationFromVersion0(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	raw, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = raw.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket([]byte("users"))
		return b.Put([]byte("alice"), []byte(`{"username":"alice","email":"alice@example.com","roles":["admin"],"created":"2020-01-01T00:00:00Z","version":3}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	raw.Close()
	db := openAt(t, path, nil)
	if v, _ := db.SchemaVersion(); v != schemaVersion {
		t.Errorf("schema %d, want %d", v, schemaVersion)
	}
	if u, err := db.UserByLogin("alice@example.com"); err != nil || u.Roles[0] != "admin" {
		t.Errorf("migrated email index: %+v %v", u, err)
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	raw, _ := bolt.Open(path, 0o600, nil)
	_ = raw.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket([]byte("meta"))
		return b.Put([]byte("schema"), []byte("99"))
	})
	raw.Close()
	if _, err := Open(path, Options{}); !errors.Is(err, ErrNewerSchema) {
		t.Errorf("Open of a newer schema: %v", err)
	}
}

func BenchmarkSessionUser(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.db")
	db, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	_ = db.CreateUser(User{Username: "alice", Roles: []string{"staff"}})
	id := NewSessionID()
	_ = db.CreateSession(Session{ID: id, Username: "alice", Created: time.Now(), Expires: time.Now().Add(time.Hour), Idle: time.Hour})
	b.ReportAllocs()
	for b.Loop() {
		s, err := db.Session(id)
		if err != nil {
			b.Fatal(err)
		}
		_ = db.TouchSession(id, time.Now())
		if _, err := db.User(s.Username); err != nil {
			b.Fatal(err)
		}
	}
}
