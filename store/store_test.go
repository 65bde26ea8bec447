package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openTest opens a database under t.TempDir() and checks its consistency
// when the test ends.
func openTest(t *testing.T, c *clock) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	return openAt(t, path, c), path
}

// openAt opens path; the test's cleanup checks and closes it unless the
// test closed it first.
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
		if err := db.Check(); err != nil && !errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
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

func mustSession(t *testing.T, db *DB, s Session) string {
	t.Helper()
	s.ID = NewSessionID()
	if err := db.CreateSession(s); err != nil {
		t.Fatal(err)
	}
	return s.ID
}

// diskSession reads a session record straight from the file, past the cache.
func diskSession(t *testing.T, db *DB, id string) *Session {
	t.Helper()
	var s *Session
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		s, err = getSession(tx, sessionKey(id))
		return err
	})
	if err != nil {
		t.Fatalf("session on disk: %v", err)
	}
	return s
}

func TestCanonicalUsername(t *testing.T) {
	tests := []struct{ in, want string }{
		{"alice", "alice"},
		{"Alice", "alice"},
		{" ALICE\t", "alice"},
		{"a.b_c-d9", "a.b_c-d9"},
		{"0day", "0day"},
		{strings.Repeat("a", 64), strings.Repeat("a", 64)},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got, err := CanonicalUsername(tc.in); got != tc.want || err != nil {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "  ", "a b", "al@ice", "-x", ".x", strings.Repeat("a", 65), "ünïcode", "a/b", "a\x00"} {
		t.Run("bad "+bad, func(t *testing.T) {
			if got, err := CanonicalUsername(bad); !errors.Is(err, ErrBadUsername) {
				t.Errorf("got %q, %v; want ErrBadUsername", got, err)
			}
		})
	}
}

func TestCanonicalEmail(t *testing.T) {
	tests := []struct{ in, want string }{
		{"alice@example.com", "alice@example.com"},
		{" Alice@Example.COM ", "alice@example.com"},
		{"a+tag@sub.example.org", "a+tag@sub.example.org"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got, err := CanonicalEmail(tc.in); got != tc.want || err != nil {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	long := strings.Repeat("a", 250) + "@b.cd"
	for _, bad := range []string{"", "a", "a@b@c", "@b", "a@", "a b@c", "a@b..c", "a@.b", "a@b.", "<a>@b", "a@b\x00", "a@b\r\nBcc: x@y", long} {
		t.Run("bad "+bad, func(t *testing.T) {
			if got, err := CanonicalEmail(bad); !errors.Is(err, ErrBadEmail) {
				t.Errorf("got %q, %v; want ErrBadEmail", got, err)
			}
		})
	}
}

func TestOneUserWhateverTheSpelling(t *testing.T) {
	db, _ := openTest(t, nil)
	mustCreate(t, db, User{Username: " Alice ", Email: "Alice@Example.COM", Roles: []string{"b", "a", "a", " "}})
	for _, login := range []string{"alice", "ALICE", " Alice", "alice@example.com", "ALICE@EXAMPLE.COM "} {
		t.Run(login, func(t *testing.T) {
			u, err := db.UserByLogin(login)
			if err != nil || u.Username != "alice" {
				t.Errorf("UserByLogin = %q, %v; want alice", u.Username, err)
			}
		})
	}
	u, err := db.User("ALICE")
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != "alice@example.com" || !slices.Equal(u.Roles, []string{"a", "b"}) {
		t.Errorf("stored email %q roles %q; want alice@example.com [a b]", u.Email, u.Roles)
	}
	for _, login := range []string{"bob", "bob@example.com", "alice@example.org", "not a name", "@"} {
		if _, err := db.UserByLogin(login); !errors.Is(err, ErrNotFound) {
			t.Errorf("UserByLogin(%q) = %v, want ErrNotFound", login, err)
		}
	}
}

func TestUniqueNamesAndEmails(t *testing.T) {
	db, _ := openTest(t, nil)
	mustCreate(t, db, User{Username: "alice", Email: "alice@example.com"})
	mustCreate(t, db, User{Username: "bob", Email: "bob@example.com"})
	if err := db.CreateUser(User{Username: "ALICE"}); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate username: got %v, want ErrExists", err)
	}
	if err := db.CreateUser(User{Username: "carol", Email: "ALICE@example.com"}); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate email: got %v, want ErrExists", err)
	}
	if _, err := db.UpdateUser("bob", func(u *User) error { u.Email = "Alice@Example.com"; return nil }); !errors.Is(err, ErrExists) {
		t.Errorf("update to a taken email: got %v, want ErrExists", err)
	}
	if u, _ := db.User("bob"); u.Email != "bob@example.com" || u.Version != 1 {
		t.Errorf("failed update left email %q version %d; want bob@example.com 1", u.Email, u.Version)
	}
	if _, err := db.UpdateUser("bob", func(u *User) error { u.Email = "robert@example.com"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UserByLogin("bob@example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("old email still resolves: got %v, want ErrNotFound", err)
	}
	mustCreate(t, db, User{Username: "carol", Email: "bob@example.com"}) // freed by the change
	if _, err := db.UpdateUser("carol", func(u *User) error { u.Email = "not an email"; return nil }); !errors.Is(err, ErrBadEmail) {
		t.Errorf("update to a bad email: got %v, want ErrBadEmail", err)
	}
	if err := db.DeleteUser("alice"); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, db, User{Username: "dave", Email: "alice@example.com"}) // freed by the deletion
	users, err := db.Users()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Username)
	}
	if want := []string{"bob", "carol", "dave"}; !slices.Equal(names, want) {
		t.Errorf("Users = %q, want %q", names, want)
	}
	if n, err := db.CountUsers(); n != 3 || err != nil {
		t.Errorf("CountUsers = %d, %v; want 3", n, err)
	}
}

func TestChangesAreVisibleOnTheNextRead(t *testing.T) {
	db, _ := openTest(t, nil)
	mustCreate(t, db, User{Username: "alice", Roles: []string{"admin"}})
	if u, _ := db.User("alice"); !slices.Equal(u.Roles, []string{"admin"}) || u.Version != 1 {
		t.Fatalf("initial roles %q version %d; want [admin] 1", u.Roles, u.Version)
	}
	mustCreate(t, db, User{Username: "root", Roles: []string{"admin"}}) // so alice is not the last admin
	got, err := db.UpdateUser("alice", func(u *User) error {
		u.Roles = []string{"staff"}
		u.Disabled = true
		u.Username = "mallory" // ignored: a rename is not an update
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Username != "alice" || got.Version != 2 {
		t.Errorf("UpdateUser returned %q version %d; want alice 2", got.Username, got.Version)
	}
	u, _ := db.User("alice")
	if !u.Disabled || !slices.Equal(u.Roles, []string{"staff"}) || u.Version != 2 {
		t.Errorf("after update: disabled %v roles %q version %d; want true [staff] 2", u.Disabled, u.Roles, u.Version)
	}
	if _, err := db.User("mallory"); !errors.Is(err, ErrNotFound) {
		t.Errorf("rename through UpdateUser: got %v, want ErrNotFound", err)
	}
	wantErr := errors.New("refused")
	if _, err := db.UpdateUser("alice", func(u *User) error { u.Disabled = false; return wantErr }); !errors.Is(err, wantErr) {
		t.Errorf("fn's error: got %v, want %v", err, wantErr)
	}
	if u, _ := db.User("alice"); !u.Disabled {
		t.Error("an update whose fn failed re-enabled the user")
	}
	if err := db.DeleteUser("alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.User("alice"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted user: got %v, want ErrNotFound", err)
	}
	if err := db.DeleteUser("alice"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete twice: got %v, want ErrNotFound", err)
	}
	if _, err := db.UpdateUser("alice", func(*User) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("update of a deleted user: got %v, want ErrNotFound", err)
	}
}

func TestCacheNeverRevivesAChangedUser(t *testing.T) {
	db, _ := openTest(t, nil)
	mustCreate(t, db, User{Username: "alice"})
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			db.mu.Lock()
			delete(db.users, "alice") // force a read from disk that races the update
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
	var onDisk *User
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		onDisk, err = getUser(tx, "alice")
		return err
	})
	if cached.Version != onDisk.Version || cached.FailedLogins != 100 {
		t.Errorf("cache: version %d failures %d; disk: version %d; want both 101 and 100 failures",
			cached.Version, cached.FailedLogins, onDisk.Version)
	}
}

func TestSessionExpiry(t *testing.T) {
	tests := []struct {
		name        string
		idle, life  time.Duration
		steps       []time.Duration // clock advances, each followed by a touch
		thenWait    time.Duration
		wantExpired bool
	}{
		{"fresh", time.Hour, 12 * time.Hour, nil, 59 * time.Minute, false},
		{"idle too long", time.Hour, 12 * time.Hour, nil, time.Hour, true},
		{"kept alive by touches", time.Hour, 12 * time.Hour, []time.Duration{50 * time.Minute, 50 * time.Minute}, 50 * time.Minute, false},
		{"idle after the last touch", time.Hour, 12 * time.Hour, []time.Duration{50 * time.Minute}, 61 * time.Minute, true},
		{"touched but past its absolute end", time.Hour, 2 * time.Hour, []time.Duration{30 * time.Minute, 30 * time.Minute, 30 * time.Minute}, 30 * time.Minute, true},
		{"no idle timeout (remember me)", 0, 30 * 24 * time.Hour, nil, 29 * 24 * time.Hour, false},
		{"remember me ends too", 0, 30 * 24 * time.Hour, nil, 30 * 24 * time.Hour, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			db, _ := openTest(t, c)
			mustCreate(t, db, User{Username: "alice"})
			id := mustSession(t, db, Session{Username: "alice", Created: c.now(), Expires: c.now().Add(tc.life), Idle: tc.idle})
			for _, d := range tc.steps {
				c.add(d)
				if err := db.TouchSession(id, c.now()); err != nil {
					t.Fatalf("touch: %v", err)
				}
			}
			c.add(tc.thenWait)
			_, err := db.Session(id)
			if gotExpired := errors.Is(err, ErrNotFound); gotExpired != tc.wantExpired || (err != nil && !gotExpired) {
				t.Errorf("Session: got err %v, want expired=%v", err, tc.wantExpired)
			}
			if tc.wantExpired {
				// Deleted, not merely hidden: a later clock rollback does not revive it.
				if err := db.bolt.View(func(tx *bolt.Tx) error { _, err := getSession(tx, sessionKey(id)); return err }); !errors.Is(err, ErrNotFound) {
					t.Errorf("expired session on disk: got %v, want ErrNotFound", err)
				}
			}
		})
	}
	t.Run("unknown id", func(t *testing.T) {
		db, _ := openTest(t, nil)
		for _, id := range []string{"", "never-issued", NewSessionID(), strings.Repeat("x", 200)} {
			if _, err := db.Session(id); !errors.Is(err, ErrNotFound) {
				t.Errorf("Session(%q): got %v, want ErrNotFound", id, err)
			}
			if err := db.TouchSession(id, time.Now()); !errors.Is(err, ErrNotFound) {
				t.Errorf("TouchSession(%q): got %v, want ErrNotFound", id, err)
			}
			if _, err := db.UseSession(id, time.Now()); !errors.Is(err, ErrNotFound) {
				t.Errorf("UseSession(%q): got %v, want ErrNotFound", id, err)
			}
		}
	})
}

// A touch arriving after the idle timeout (a request that outlived it, or
// a caller touching before checking) must not bring the session back.
func TestTouchDoesNotReviveAnExpiredSession(t *testing.T) {
	c := newClock()
	db, _ := openTest(t, c)
	mustCreate(t, db, User{Username: "alice"})
	id := mustSession(t, db, Session{Username: "alice", Created: c.now(), Expires: c.now().Add(24 * time.Hour), Idle: time.Hour})
	c.add(2 * time.Hour)
	if err := db.TouchSession(id, c.now()); !errors.Is(err, ErrNotFound) {
		t.Errorf("touch of an idle-expired session: got %v, want ErrNotFound", err)
	}
	if _, err := db.Session(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Session after the touch: got %v, want ErrNotFound", err)
	}
}

// UseSession, the per-request lookup, keeps an active session alive past
// its idle timeout and ends an idle one, like Session plus TouchSession.
func TestUseSessionKeepsActiveSessionsAlive(t *testing.T) {
	c := newClock()
	db, _ := openTest(t, c)
	mustCreate(t, db, User{Username: "alice"})
	id := mustSession(t, db, Session{Username: "alice", Created: c.now(), Expires: c.now().Add(24 * time.Hour), Idle: time.Hour})
	for range 5 { // five hours of activity, 50 minutes apart
		c.add(50 * time.Minute)
		s, err := db.UseSession(id, c.now())
		if err != nil {
			t.Fatalf("active session: %v", err)
		}
		if s.ID != id || s.Username != "alice" || !s.LastSeen.Equal(c.now()) {
			t.Fatalf("got id %q user %q last seen %v, want %q alice %v", s.ID, s.Username, s.LastSeen, id, c.now())
		}
	}
	c.add(61 * time.Minute)
	if _, err := db.UseSession(id, c.now()); !errors.Is(err, ErrNotFound) {
		t.Errorf("idle for 61 minutes: got %v, want ErrNotFound", err)
	}
	if _, err := db.Session(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Session after the idle expiry: got %v, want ErrNotFound", err)
	}
}

func TestTouchReachesDiskOncePerInterval(t *testing.T) {
	c := newClock()
	db, path := openTest(t, c)
	mustCreate(t, db, User{Username: "alice"})
	created := c.now()
	id := mustSession(t, db, Session{Username: "alice", Created: created, Expires: created.Add(24 * time.Hour), Idle: time.Hour})

	c.add(30 * time.Second)
	if err := db.TouchSession(id, c.now()); err != nil {
		t.Fatal(err)
	}
	if got := diskSession(t, db, id).LastSeen; !got.Equal(created) {
		t.Errorf("30s after creation: LastSeen on disk %v, want %v (memory only)", got, created)
	}
	if s, _ := db.Session(id); !s.LastSeen.Equal(c.now()) {
		t.Errorf("30s after creation: LastSeen in memory %v, want %v", s.LastSeen, c.now())
	}

	c.add(time.Minute)
	if err := db.TouchSession(id, c.now()); err != nil {
		t.Fatal(err)
	}
	persisted := c.now()
	if got := diskSession(t, db, id).LastSeen; !got.Equal(persisted) {
		t.Errorf("after TouchInterval: LastSeen on disk %v, want %v", got, persisted)
	}
	if list, _ := db.UserSessions("alice"); len(list) != 1 || !list[0].LastSeen.Equal(persisted) {
		t.Errorf("UserSessions = %+v, want one session last seen at %v", list, persisted)
	}

	c.add(10 * time.Second)
	if err := db.TouchSession(id, c.now()); err != nil {
		t.Fatal(err)
	}
	if err := db.TouchSession(id, c.now().Add(-time.Hour)); err != nil { // a late, older touch
		t.Fatal(err)
	}
	last := c.now()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart: the touch still in memory was written by Close.
	db2 := openAt(t, path, c)
	s, err := db2.Session(id)
	if err != nil {
		t.Fatal(err)
	}
	if !s.LastSeen.Equal(last) {
		t.Errorf("LastSeen after restart = %v, want %v", s.LastSeen, last)
	}
}

func TestSignOutIsVisibleAtOnce(t *testing.T) {
	db, _ := openTest(t, nil)
	mustCreate(t, db, User{Username: "alice"})
	id := mustSession(t, db, Session{Username: "Alice", Expires: time.Now().Add(time.Hour)})
	s, err := db.Session(id)
	if err != nil || s.Username != "alice" || s.ID != id {
		t.Fatalf("Session = %q %q, %v; want alice and the id", s.Username, s.ID, err)
	}
	if err := db.DeleteSession(id); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Session(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("signed-out session: got %v, want ErrNotFound", err)
	}
	if err := db.TouchSession(id, time.Now()); !errors.Is(err, ErrNotFound) {
		t.Errorf("touch after sign-out: got %v, want ErrNotFound", err)
	}
	if err := db.DeleteSession(id); err != nil {
		t.Errorf("second sign-out: got %v, want nil", err)
	}
}

func TestCreateSessionRefusesBadRecords(t *testing.T) {
	db, _ := openTest(t, nil)
	mustCreate(t, db, User{Username: "alice"})
	later := time.Now().Add(time.Hour)
	tests := []struct {
		name    string
		s       Session
		wantErr error
	}{
		{"no id", Session{Username: "alice", Expires: later}, errBadSession},
		{"no user", Session{ID: "x", Expires: later}, errBadSession},
		{"no expiry", Session{ID: "x", Username: "alice"}, errBadSession},
		{"unknown user", Session{ID: "x", Username: "bob", Expires: later}, ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := db.CreateSession(tc.s); !errors.Is(err, tc.wantErr) {
				t.Errorf("got %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// The file holds sha256 of each session id, never the id: a stolen backup
// opens no session.
func TestSessionIDsAreNotInTheFile(t *testing.T) {
	db, path := openTest(t, nil)
	mustCreate(t, db, User{Username: "alice"})
	id := mustSession(t, db, Session{Username: "alice", Expires: time.Now().Add(time.Hour)})
	var backup bytes.Buffer
	n, err := db.Backup(&backup)
	if err != nil || n != int64(backup.Len()) {
		t.Fatalf("Backup = %d, %v; wrote %d bytes", n, err, backup.Len())
	}
	db.Close()
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"file": file, "backup": backup.Bytes()} {
		if bytes.Contains(data, []byte(id)) {
			t.Errorf("the session id is in the %s", name)
		}
	}
}

func TestSessionsEndWithTheirUser(t *testing.T) {
	c := newClock()
	db, _ := openTest(t, c)
	mustCreate(t, db, User{Username: "alice"})
	mustCreate(t, db, User{Username: "bob"})
	var ids []string
	for _, who := range []string{"alice", "alice", "alice", "bob"} {
		ids = append(ids, mustSession(t, db, Session{Username: who, Created: c.now(), Expires: c.now().Add(time.Hour), UserAgent: "test"}))
		c.add(time.Second)
	}
	list, err := db.UserSessions("ALICE")
	if err != nil || len(list) != 3 {
		t.Fatalf("UserSessions = %d sessions, %v; want 3", len(list), err)
	}
	for _, s := range list {
		if slices.Contains(ids, s.ID) {
			t.Error("UserSessions revealed a session id")
		}
	}
	if err := db.DeleteSessionByHandle("bob", list[0].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob ending alice's session: got %v, want ErrNotFound", err)
	}
	if err := db.DeleteSessionByHandle("alice", list[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Session(ids[2]); !errors.Is(err, ErrNotFound) {
		t.Errorf("session ended by handle (newest first): got %v, want ErrNotFound", err)
	}
	if n, err := db.DeleteUserSessions("alice", ids[0]); n != 1 || err != nil {
		t.Errorf("DeleteUserSessions = %d, %v; want 1", n, err)
	}
	if _, err := db.Session(ids[1]); !errors.Is(err, ErrNotFound) {
		t.Errorf("session ended by DeleteUserSessions: got %v, want ErrNotFound", err)
	}
	if _, err := db.Session(ids[0]); err != nil {
		t.Errorf("the kept session: got %v, want nil", err)
	}
	if err := db.DeleteUser("alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Session(ids[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted user's session: got %v, want ErrNotFound", err)
	}
	if _, err := db.Session(ids[3]); err != nil {
		t.Errorf("bob's session: got %v, want nil", err)
	}
	if err := db.CreateSession(Session{ID: NewSessionID(), Username: "alice", Expires: c.now().Add(time.Hour)}); !errors.Is(err, ErrNotFound) {
		t.Errorf("session for a deleted user: got %v, want ErrNotFound", err)
	}
	mustCreate(t, db, User{Username: "alice"}) // a new alice inherits nothing
	if list, _ := db.UserSessions("alice"); len(list) != 0 {
		t.Errorf("new alice has %d sessions, want 0", len(list))
	}
}

func TestDeleteExpiredSessions(t *testing.T) {
	c := newClock()
	db, _ := openTest(t, c)
	mustCreate(t, db, User{Username: "alice"})
	short := mustSession(t, db, Session{Username: "alice", Created: c.now(), Expires: c.now().Add(time.Hour)})
	long := mustSession(t, db, Session{Username: "alice", Created: c.now(), Expires: c.now().Add(48 * time.Hour), Idle: 3 * time.Hour})
	c.add(2 * time.Hour)
	if err := db.TouchSession(long, c.now()); err != nil { // in memory only; it counts
		t.Fatal(err)
	}
	c.add(2 * time.Hour)
	if n, err := db.DeleteExpiredSessions(); n != 1 || err != nil {
		t.Errorf("DeleteExpiredSessions = %d, %v; want 1", n, err)
	}
	if _, err := db.Session(short); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired session: got %v, want ErrNotFound", err)
	}
	if _, err := db.Session(long); err != nil {
		t.Errorf("live session purged: %v", err)
	}
}

// Requests, touches and sign-outs at once: run with -race.
func TestConcurrentSessionUse(t *testing.T) {
	db, _ := openTest(t, nil)
	mustCreate(t, db, User{Username: "alice"})
	db.touchEvery = time.Nanosecond // every touch writes
	id := mustSession(t, db, Session{Username: "alice", Expires: time.Now().Add(time.Hour), Idle: time.Hour})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if s, err := db.Session(id); err == nil {
					_, _ = db.User(s.Username)
				}
				_ = db.TouchSession(id, time.Now())
			}
		})
	}
	wg.Go(func() { _ = db.DeleteSession(id) })
	wg.Wait()
	if _, err := db.Session(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("after sign-out: got %v, want ErrNotFound", err)
	}
	if err := db.bolt.View(func(tx *bolt.Tx) error { _, err := getSession(tx, sessionKey(id)); return err }); !errors.Is(err, ErrNotFound) {
		t.Errorf("a touch resurrected the session on disk: got %v, want ErrNotFound", err)
	}
}

func TestOpenMakesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "gatehouse.db")
	openAt(t, path, nil)
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got&^want != 0 {
			t.Errorf("%s: mode %v, want at most %v", filepath.Base(p), got, want)
		}
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	_, path := openTest(t, nil)
	done := make(chan error, 1)
	go func() {
		db, err := Open(path, Options{Timeout: 100 * time.Millisecond})
		if err == nil {
			db.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrInUse) {
			t.Errorf("second Open: got %v, want ErrInUse", err)
		}
	case <-time.After(30 * time.Second): // a generous bound on a hang, not a timing assertion
		t.Fatal("second Open hung")
	}
}

func TestBackupWhileOpen(t *testing.T) {
	db, _ := openTest(t, nil)
	mustCreate(t, db, User{Username: "alice", Email: "a@example.com", Roles: []string{"admin"}})
	mustCreate(t, db, User{Username: "bob"})
	out := filepath.Join(t.TempDir(), "copy.db")
	if err := db.BackupFile(out); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, db, User{Username: "carol"}) // after the backup: not in it
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v; want mode 0600", fi, err)
	}
	if err := db.BackupFile(out); err != nil { // replaces the old copy
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 1 {
		t.Errorf("backup directory holds %d files, want 1 (no temporary left over)", len(entries))
	}
	cp := openAt(t, out, nil)
	users, err := cp.Users()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Username)
	}
	if want := []string{"alice", "bob", "carol"}; !slices.Equal(names, want) {
		t.Errorf("users in the backup = %q, want %q", names, want)
	}
	if u, err := cp.UserByLogin("a@example.com"); err != nil || u.Username != "alice" {
		t.Errorf("backup's email index: got %q, %v; want alice", u.Username, err)
	}
}

// writeV0 writes a version-0 file: users only (JSON by name), no meta
// bucket, no email index, no sessions.
func writeV0(t *testing.T, users map[string]string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "old.db")
	raw, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	err = raw.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("users"))
		if err != nil {
			return err
		}
		for name, data := range users {
			if err := b.Put([]byte(name), []byte(data)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMigrationFromVersion0(t *testing.T) {
	path := writeV0(t, map[string]string{
		"alice": `{"username":"alice","email":"alice@example.com","roles":["admin"],"created":"2020-01-01T00:00:00Z","version":3}`,
		"bob":   `{"username":"bob","email":" Bob@Example.COM","created":"2020-01-01T00:00:00Z","version":1}`,
		"carol": `{"username":"carol","created":"2020-01-01T00:00:00Z","version":1}`,
	})
	db := openAt(t, path, nil)
	if v, err := db.SchemaVersion(); v != schemaVersion || err != nil {
		t.Errorf("SchemaVersion = %d, %v; want %d", v, err, schemaVersion)
	}
	u, err := db.UserByLogin("alice@example.com")
	if err != nil || u.Username != "alice" || !slices.Equal(u.Roles, []string{"admin"}) || u.Version != 3 {
		t.Errorf("migrated alice by email: %+v, %v", u, err)
	}
	if u, err := db.UserByLogin("bob@example.com"); err != nil || u.Username != "bob" || u.Email != "bob@example.com" {
		t.Errorf("migrated bob by email: got %q with email %q, %v; want bob, bob@example.com", u.Username, u.Email, err)
	}
	if err := db.CreateUser(User{Username: "dave", Email: "alice@example.com"}); !errors.Is(err, ErrExists) {
		t.Errorf("email uniqueness after migration: got %v, want ErrExists", err)
	}
	id := mustSession(t, db, Session{Username: "carol", Expires: time.Now().Add(time.Hour)})
	if _, err := db.Session(id); err != nil {
		t.Errorf("session in a migrated file: %v", err)
	}
}

// Two version-0 users with one email cannot both keep it: Open refuses,
// naming them, and leaves the file as it was.
func TestMigrationRefusesADuplicateEmail(t *testing.T) {
	path := writeV0(t, map[string]string{
		"alice": `{"username":"alice","email":"shared@example.com","created":"2020-01-01T00:00:00Z","version":1}`,
		"bob":   `{"username":"bob","email":"SHARED@example.com","created":"2020-01-01T00:00:00Z","version":1}`,
	})
	db, err := Open(path, Options{})
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), `"alice"`) || !strings.Contains(err.Error(), `"bob"`) {
		t.Errorf("Open: got %v, want ErrExists naming alice and bob", err)
	}
	if err == nil {
		db.Close()
	}
	raw, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) != nil || tx.Bucket(bucketEmails) != nil {
			t.Error("a failed migration changed the file")
		}
		return nil
	})
}

func TestNewerSchemaIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	raw, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = raw.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		return b.Put([]byte("schema"), []byte("99"))
	})
	if err != nil {
		t.Fatal(err)
	}
	raw.Close()
	db, err := Open(path, Options{})
	if !errors.Is(err, ErrNewerSchema) {
		t.Errorf("Open of schema 99: got %v, want ErrNewerSchema", err)
	}
	if err == nil {
		db.Close()
	}
}

func benchDB(b *testing.B) (*DB, string) {
	db, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if err := db.CreateUser(User{Username: "alice", Roles: []string{"staff"}}); err != nil {
		b.Fatal(err)
	}
	id := NewSessionID()
	if err := db.CreateSession(Session{ID: id, Username: "alice", Expires: time.Now().Add(time.Hour), Idle: time.Hour}); err != nil {
		b.Fatal(err)
	}
	return db, id
}

// BenchmarkSessionUser is the store's share of a signed-in request.
func BenchmarkSessionUser(b *testing.B) {
	db, id := benchDB(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := sessionUser(db, id); err != nil {
			b.Fatal(err)
		}
	}
}

// sessionUser is what a signed-in request asks of the store: the session,
// its activity recorded, and its user.
func sessionUser(db *DB, id string) error {
	s, err := db.UseSession(id, time.Now())
	if err != nil {
		return err
	}
	_, err = db.User(s.Username)
	return err
}

// BenchmarkSessionUserParallel is many browsers at once, each with its own session.
func BenchmarkSessionUserParallel(b *testing.B) {
	db, _ := benchDB(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		id := NewSessionID()
		if err := db.CreateSession(Session{ID: id, Username: "alice", Expires: time.Now().Add(time.Hour), Idle: time.Hour}); err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			if err := sessionUser(db, id); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// An admin who demotes, disables or deletes the last admin account (often
// their own) would lock everyone out of the admin pages: refused, and
// nothing changes.
func TestLastAdminIsKept(t *testing.T) {
	tests := []struct {
		name   string
		others []User // besides alice, an active admin
		act    func(db *DB) error
		want   error
	}{
		{"demote", nil, demote("alice"), ErrLastAdmin},
		{"demote by replacing roles", []User{{Username: "bob", Roles: []string{"staff"}}},
			update("alice", func(u *User) { u.Roles = []string{"staff", "Admin"} }), ErrLastAdmin},
		{"disable", nil, update("alice", func(u *User) { u.Disabled = true }), ErrLastAdmin},
		{"mark pending", nil, update("alice", func(u *User) { u.Pending = true }), ErrLastAdmin},
		{"delete", nil, func(db *DB) error { return db.DeleteUser("ALICE") }, ErrLastAdmin},
		{"a disabled admin does not count", []User{{Username: "bob", Roles: []string{"admin"}, Disabled: true}},
			func(db *DB) error { return db.DeleteUser("alice") }, ErrLastAdmin},
		{"a pending admin does not count", []User{{Username: "bob", Roles: []string{"admin"}, Pending: true}},
			update("alice", func(u *User) { u.Disabled = true }), ErrLastAdmin},
		{"other changes to the last admin", nil,
			update("alice", func(u *User) { u.DisplayName = "Alice"; u.Roles = append(u.Roles, "staff") }), nil},
		{"lock out the last admin", nil, update("alice", func(u *User) { u.FailedLogins = 5 }), nil},
		{"demote with another admin", []User{{Username: "bob", Roles: []string{"admin"}}}, demote("alice"), nil},
		{"delete with another admin", []User{{Username: "bob", Roles: []string{"admin", "staff"}}},
			func(db *DB) error { return db.DeleteUser("alice") }, nil},
		{"delete a disabled admin", []User{{Username: "bob", Roles: []string{"admin"}, Disabled: true}},
			func(db *DB) error { return db.DeleteUser("bob") }, nil},
		{"delete a plain user", []User{{Username: "bob"}}, func(db *DB) error { return db.DeleteUser("bob") }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, _ := openTest(t, nil)
			mustCreate(t, db, User{Username: "alice", Roles: []string{"admin"}})
			for _, u := range tc.others {
				mustCreate(t, db, u)
			}
			id := mustSession(t, db, Session{Username: "alice", Expires: time.Now().Add(time.Hour)})
			err := tc.act(db)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.want == nil {
				return
			}
			u, err := db.User("alice")
			if err != nil || u.Version != 1 || u.Disabled || u.Pending || !slices.Equal(u.Roles, []string{"admin"}) {
				t.Errorf("alice after a refused change: %+v, %v; want her unchanged", u, err)
			}
			if _, err := db.Session(id); err != nil {
				t.Errorf("alice's session after a refused change: %v", err)
			}
		})
	}
}

func demote(name string) func(db *DB) error {
	return update(name, func(u *User) { u.Roles = nil })
}

func update(name string, fn func(u *User)) func(db *DB) error {
	return func(db *DB) error {
		_, err := db.UpdateUser(name, func(u *User) error { fn(u); return nil })
		return err
	}
}

// Two admins: either may go, but not both; the guard counts on disk, so
// a cached copy cannot fool it.
func TestTwoAdminsThenOne(t *testing.T) {
	db, _ := openTest(t, nil)
	mustCreate(t, db, User{Username: "alice", Roles: []string{"admin"}})
	mustCreate(t, db, User{Username: "bob", Roles: []string{"admin"}})
	if err := demote("alice")(db); err != nil {
		t.Fatalf("demoting one of two admins: %v", err)
	}
	if err := demote("bob")(db); !errors.Is(err, ErrLastAdmin) {
		t.Errorf("demoting the last admin: got %v, want ErrLastAdmin", err)
	}
	if err := db.DeleteUser("bob"); !errors.Is(err, ErrLastAdmin) {
		t.Errorf("deleting the last admin: got %v, want ErrLastAdmin", err)
	}
	if _, err := db.UpdateUser("alice", func(u *User) error { u.Roles = []string{AdminRole}; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteUser("bob"); err != nil {
		t.Errorf("deleting bob with alice an admin again: %v", err)
	}
	if u, err := db.User("bob"); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob after delete: %+v, %v; want ErrNotFound", u, err)
	}
}

// Concurrent demotions of two admins: the count is inside each write
// transaction, so one of them must be refused.
func TestConcurrentDemotionsKeepOneAdmin(t *testing.T) {
	for range 20 {
		db, _ := openTest(t, nil)
		mustCreate(t, db, User{Username: "alice", Roles: []string{"admin"}})
		mustCreate(t, db, User{Username: "bob", Roles: []string{"admin"}})
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, name := range []string{"alice", "bob"} {
			wg.Go(func() { errs[i] = demote(name)(db) })
		}
		wg.Wait()
		if refused := errors.Is(errs[0], ErrLastAdmin) != errors.Is(errs[1], ErrLastAdmin); !refused {
			t.Fatalf("two concurrent demotions: %v, %v; want exactly one ErrLastAdmin", errs[0], errs[1])
		}
	}
}

func TestSearchUsers(t *testing.T) {
	db, _ := openTest(t, nil)
	for _, u := range []User{
		{Username: "carol", Email: "carol@example.org", DisplayName: "Carol Ång"},
		{Username: "alice", Email: "alice@example.com", DisplayName: "Alice Liddell"},
		{Username: "bob", DisplayName: "Robert (Bob)"},
		{Username: "dave", Email: "d@corp.example.com"},
		{Username: "erin-admin"},
	} {
		mustCreate(t, db, u)
	}
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{"alice", "bob", "carol", "dave", "erin-admin"}},
		{"  ", []string{"alice", "bob", "carol", "dave", "erin-admin"}},
		{"ALI", []string{"alice"}},                 // username, any case
		{"example.COM", []string{"alice", "dave"}}, // email
		{"liddell", []string{"alice"}},             // display name
		{"robert", []string{"bob"}},
		{"åNG", []string{"carol"}},       // beyond ASCII
		{"RO", []string{"bob", "carol"}}, // display name or username
		{"admin", []string{"erin-admin"}},
		{"nobody", nil},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			users, total, err := db.SearchUsers(tc.query, 0, 50)
			var got []string
			for _, u := range users {
				got = append(got, u.Username)
			}
			if err != nil || !slices.Equal(got, tc.want) || total != len(tc.want) {
				t.Errorf("SearchUsers(%q) = %q, total %d, %v; want %q, %d", tc.query, got, total, err, tc.want, len(tc.want))
			}
		})
	}
}

func TestSearchUsersPages(t *testing.T) {
	db, _ := openTest(t, nil)
	var all []string
	for i := range 250 {
		name := "user" + strconv.Itoa(1000 + i)[1:]
		all = append(all, name)
		mustCreate(t, db, User{Username: name})
	}
	mustCreate(t, db, User{Username: "zed"}) // matches no "user" query
	tests := []struct {
		name          string
		offset, limit int
		want          []string
	}{
		{"first page", 0, 10, all[:10]},
		{"second page", 10, 10, all[10:20]},
		{"last, short page", 245, 10, all[245:]},
		{"past the end", 300, 10, nil},
		{"negative offset", -5, 3, all[:3]},
		{"limit 0 is 1", 0, 0, all[:1]},
		{"negative limit is 1", 7, -1, all[7:8]},
		{"limit capped", 0, 1000, all[:MaxSearchLimit]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			users, total, err := db.SearchUsers("USER", tc.offset, tc.limit)
			var got []string
			for _, u := range users {
				got = append(got, u.Username)
			}
			if err != nil || total != len(all) || !slices.Equal(got, tc.want) {
				t.Errorf("got %d users %.3q…, total %d, %v; want %d users %.3q…, total %d",
					len(got), got, total, err, len(tc.want), tc.want, len(all))
			}
		})
	}
}

// A version-1 file gains the token buckets, and its users' addresses,
// all set by admins, count as verified.
func TestMigrationFromVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	raw, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = raw.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketUsers, bucketEmails, bucketSessions, bucketUserSessions} {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		put := func(b, k, v string) error { return tx.Bucket([]byte(b)).Put([]byte(k), []byte(v)) }
		return errors.Join(
			put("meta", "schema", "1"),
			put("users", "alice", `{"username":"alice","email":"alice@example.com","roles":["admin"],"created":"2020-01-01T00:00:00Z","version":4}`),
			put("emails", "alice@example.com", "alice"),
			put("users", "bob", `{"username":"bob","created":"2020-01-01T00:00:00Z","version":1}`),
		)
	})
	raw.Close()
	if err != nil {
		t.Fatal(err)
	}
	db := openAt(t, path, nil)
	if v, err := db.SchemaVersion(); v != 2 || err != nil {
		t.Errorf("SchemaVersion = %d, %v; want 2", v, err)
	}
	if u, err := db.User("alice"); err != nil || !u.EmailVerified || u.Version != 4 {
		t.Errorf("alice: verified %v version %d, %v; want true 4", u.EmailVerified, u.Version, err)
	}
	if u, err := db.User("bob"); err != nil || u.EmailVerified {
		t.Errorf("bob (no email): verified %v, %v; want false", u.EmailVerified, err)
	}
	tok, err := db.CreateToken("bob", PurposeInvite, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := db.ConsumeToken(tok, PurposeInvite); got != "bob" || err != nil {
		t.Errorf("token in a migrated file: %q, %v", got, err)
	}
}
