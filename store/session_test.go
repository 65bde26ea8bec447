package store

import (
	"testing"
	"time"
)

func TestCountSessions(t *testing.T) {
	c := newClock()
	db, _ := openTest(t, c)
	count := func(want int) {
		t.Helper()
		if n, err := db.CountSessions(); n != want || err != nil {
			t.Errorf("CountSessions = %d, %v; want %d", n, err, want)
		}
	}
	count(0)
	mustCreate(t, db, User{Username: "alice"})
	mustCreate(t, db, User{Username: "bob"})
	mustSession(t, db, Session{Username: "alice", Expires: c.now().Add(time.Hour)})
	mustSession(t, db, Session{Username: "alice", Expires: c.now().Add(2 * time.Hour)})
	id := mustSession(t, db, Session{Username: "bob", Expires: c.now().Add(2 * time.Hour)})
	count(3)
	if err := db.DeleteSession(id); err != nil {
		t.Fatal(err)
	}
	count(2)
	c.add(90 * time.Minute) // one of alice's has expired: still counted until purged
	count(2)
	if n, err := db.DeleteExpiredSessions(); n != 1 || err != nil {
		t.Fatalf("DeleteExpiredSessions = %d, %v; want 1", n, err)
	}
	count(1)
	if err := db.DeleteUser("alice"); err != nil {
		t.Fatal(err)
	}
	count(0)
}
