package store

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func mustToken(t *testing.T, db *DB, user, purpose string, ttl time.Duration) string {
	t.Helper()
	raw, err := db.CreateToken(user, purpose, ttl)
	if err != nil {
		t.Fatalf("CreateToken(%q, %q): %v", user, purpose, err)
	}
	return raw
}

// wantToken checks that raw is (ok) or is not (!ok) a live token of purpose
// for user, without consuming it.
func wantToken(t *testing.T, db *DB, raw, purpose, user string, ok bool) {
	t.Helper()
	got, err := db.PeekToken(raw, purpose)
	switch {
	case ok && (err != nil || got != user):
		t.Errorf("PeekToken(%s) = %q, %v; want %q, nil", purpose, got, err, user)
	case !ok && !errors.Is(err, ErrTokenInvalid):
		t.Errorf("PeekToken(%s) = %q, %v; want ErrTokenInvalid", purpose, got, err)
	}
}

// tokenRecords counts the token records and index entries in the file.
func tokenRecords(t *testing.T, db *DB) (records, indexed int) {
	t.Helper()
	err := db.bolt.View(func(tx *bolt.Tx) error {
		records = tx.Bucket(bucketTokens).Stats().KeyN
		return tx.Bucket(bucketUserTokens).ForEachBucket(func(k []byte) error {
			indexed += tx.Bucket(bucketUserTokens).Bucket(k).Stats().KeyN
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return records, indexed
}

func TestTokenFormat(t *testing.T) {
	db, _ := openTest(t, nil)
	mustCreate(t, db, User{Username: "alice"})
	seen := map[string]bool{}
	for range 20 {
		raw := mustToken(t, db, "alice", PurposeInvite, time.Hour)
		b, err := base64.RawURLEncoding.DecodeString(raw)
		if err != nil || len(b) != 32 {
			t.Fatalf("token %q: %d bytes, %v; want 32 bytes of base64url", raw, len(b), err)
		}
		if seen[raw] {
			t.Fatalf("token %q issued twice", raw)
		}
		seen[raw] = true
	}
}

func TestTokenIsSingleUse(t *testing.T) {
	c := newClock()
	db, _ := openTest(t, c)
	mustCreate(t, db, User{Username: "alice"})
	raw := mustToken(t, db, "Alice", PurposeReset, time.Hour)
	wantToken(t, db, raw, PurposeReset, "alice", true)
	wantToken(t, db, raw, PurposeReset, "alice", true) // peeking twice consumes nothing
	if got, err := db.ConsumeToken(raw, PurposeReset); got != "alice" || err != nil {
		t.Fatalf("ConsumeToken = %q, %v; want alice, nil", got, err)
	}
	if got, err := db.ConsumeToken(raw, PurposeReset); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("second ConsumeToken = %q, %v; want ErrTokenInvalid", got, err)
	}
	wantToken(t, db, raw, PurposeReset, "alice", false)
	if n, m := tokenRecords(t, db); n != 0 || m != 0 {
		t.Errorf("after use: %d records, %d index entries; want 0, 0", n, m)
	}
	for _, bad := range []string{"", "x", raw[:len(raw)-1], string(bytes.Repeat([]byte("a"), 10000))} {
		if _, err := db.ConsumeToken(bad, PurposeReset); !errors.Is(err, ErrTokenInvalid) {
			t.Errorf("ConsumeToken(%.20q): got %v, want ErrTokenInvalid", bad, err)
		}
	}
}

// Two requests racing with one link (a double-clicked reset form): exactly
// one of them wins.
func TestTokenRaceHasOneWinner(t *testing.T) {
	db, _ := openTest(t, nil)
	mustCreate(t, db, User{Username: "alice"})
	raw := mustToken(t, db, "alice", PurposeReset, time.Hour)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 16 {
		wg.Go(func() {
			if _, err := db.ConsumeToken(raw, PurposeReset); err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, ErrTokenInvalid) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d requests consumed one token, want 1", wins)
	}
}

func TestTokenExpiry(t *testing.T) {
	c := newClock()
	db, _ := openTest(t, c)
	mustCreate(t, db, User{Username: "alice"})
	raw := mustToken(t, db, "alice", PurposeVerify, time.Hour)
	c.add(time.Hour - time.Second)
	wantToken(t, db, raw, PurposeVerify, "alice", true)
	c.add(time.Second) // expiry is exclusive: at Expires the token is dead
	wantToken(t, db, raw, PurposeVerify, "alice", false)
	if got, err := db.ConsumeToken(raw, PurposeVerify); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("ConsumeToken of an expired token = %q, %v; want ErrTokenInvalid", got, err)
	}
	if n, m := tokenRecords(t, db); n != 0 || m != 0 {
		t.Errorf("an expired token met by ConsumeToken is kept: %d records, %d index entries", n, m)
	}
}

// A link's token is of one kind: a reset token does not verify an address,
// and trying it on the wrong form does not use it up.
func TestTokenWrongPurpose(t *testing.T) {
	db, _ := openTest(t, nil)
	mustCreate(t, db, User{Username: "alice", Email: "alice@example.com"})
	raw := mustToken(t, db, "alice", PurposeReset, time.Hour)
	for _, p := range []string{PurposeVerify, PurposeInvite, "", "RESET"} {
		if got, err := db.ConsumeToken(raw, p); !errors.Is(err, ErrTokenInvalid) {
			t.Errorf("ConsumeToken(reset token, %q) = %q, %v; want ErrTokenInvalid", p, got, err)
		}
		wantToken(t, db, raw, p, "alice", false)
	}
	if _, err := db.VerifyEmail(raw); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("VerifyEmail(reset token): got %v, want ErrTokenInvalid", err)
	}
	if got, err := db.ConsumeToken(raw, PurposeReset); got != "alice" || err != nil {
		t.Errorf("ConsumeToken after wrong-purpose tries = %q, %v; want alice, nil", got, err)
	}
}

// Only the latest reset link mailed works; other purposes and other users
// are left alone.
func TestNewerTokenReplacesOlder(t *testing.T) {
	db, _ := openTest(t, nil)
	mustCreate(t, db, User{Username: "alice"})
	mustCreate(t, db, User{Username: "bob"})
	old := mustToken(t, db, "alice", PurposeReset, time.Hour)
	verify := mustToken(t, db, "alice", PurposeVerify, time.Hour)
	bobs := mustToken(t, db, "bob", PurposeReset, time.Hour)
	latest := mustToken(t, db, "alice", PurposeReset, time.Hour)
	wantToken(t, db, old, PurposeReset, "alice", false)
	wantToken(t, db, latest, PurposeReset, "alice", true)
	wantToken(t, db, verify, PurposeVerify, "alice", true)
	wantToken(t, db, bobs, PurposeReset, "bob", true)
	if n, m := tokenRecords(t, db); n != 3 || m != 3 {
		t.Errorf("%d records, %d index entries; want 3, 3", n, m)
	}
}

func TestTokensEndWithTheirUser(t *testing.T) {
	db, _ := openTest(t, nil)
	mustCreate(t, db, User{Username: "alice"})
	mustCreate(t, db, User{Username: "bob"})
	reset := mustToken(t, db, "alice", PurposeReset, time.Hour)
	invite := mustToken(t, db, "alice", PurposeInvite, time.Hour)
	bobs := mustToken(t, db, "bob", PurposeInvite, time.Hour)
	if err := db.DeleteUser("alice"); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, db, User{Username: "alice"}) // a new alice inherits no link
	wantToken(t, db, reset, PurposeReset, "alice", false)
	wantToken(t, db, invite, PurposeInvite, "alice", false)
	wantToken(t, db, bobs, PurposeInvite, "bob", true)
	if n, m := tokenRecords(t, db); n != 1 || m != 1 {
		t.Errorf("%d records, %d index entries; want bob's 1, 1", n, m)
	}
	if _, err := db.CreateToken("carol", PurposeReset, time.Hour); !errors.Is(err, ErrNotFound) {
		t.Errorf("token for a missing user: got %v, want ErrNotFound", err)
	}
}

// What a user change does to pending links: a new password ends reset
// links, a new address ends every link, anything else ends none.
func TestUserChangesAndTokens(t *testing.T) {
	tests := []struct {
		name                  string
		change                func(u *User)
		reset, verify, invite bool // still valid afterwards
	}{
		{"roles", func(u *User) { u.Roles = []string{"staff"} }, true, true, true},
		{"disable", func(u *User) { u.Disabled = true }, true, true, true},
		{"rehash or new password", func(u *User) { u.PasswordHash = "$argon2id$new" }, false, true, true},
		{"email", func(u *User) { u.Email = "new@example.com" }, false, false, false},
		{"email respelled", func(u *User) { u.Email = " Alice@Example.COM" }, true, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, _ := openTest(t, nil)
			mustCreate(t, db, User{Username: "alice", Email: "alice@example.com", PasswordHash: "$argon2id$old"})
			reset := mustToken(t, db, "alice", PurposeReset, time.Hour)
			verify := mustToken(t, db, "alice", PurposeVerify, time.Hour)
			invite := mustToken(t, db, "alice", PurposeInvite, time.Hour)
			if _, err := db.UpdateUser("alice", func(u *User) error { tc.change(u); return nil }); err != nil {
				t.Fatal(err)
			}
			wantToken(t, db, reset, PurposeReset, "alice", tc.reset)
			wantToken(t, db, verify, PurposeVerify, "alice", tc.verify)
			wantToken(t, db, invite, PurposeInvite, "alice", tc.invite)
		})
	}
}

func TestVerifyEmail(t *testing.T) {
	db, _ := openTest(t, nil)
	mustCreate(t, db, User{Username: "alice", Email: "alice@example.com", Pending: true})
	raw := mustToken(t, db, "alice", PurposeVerify, time.Hour)
	u, err := db.VerifyEmail(raw)
	if err != nil || !u.EmailVerified || u.Version != 2 || !u.Pending {
		t.Fatalf("VerifyEmail = verified %v version %d pending %v, %v; want true 2 true (approval is separate), nil",
			u.EmailVerified, u.Version, u.Pending, err)
	}
	if u, _ := db.User("alice"); !u.EmailVerified {
		t.Error("EmailVerified not visible on the next read")
	}
	if _, err := db.VerifyEmail(raw); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("VerifyEmail twice: got %v, want ErrTokenInvalid", err)
	}

	mustCreate(t, db, User{Username: "bob"})
	raw = mustToken(t, db, "bob", PurposeVerify, time.Hour)
	if _, err := db.VerifyEmail(raw); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("VerifyEmail for a user without email: got %v, want ErrTokenInvalid", err)
	}
	if u, _ := db.User("bob"); u.EmailVerified || u.Version != 1 {
		t.Errorf("bob after a refused VerifyEmail: verified %v version %d; want false 1", u.EmailVerified, u.Version)
	}
}

func TestDeleteTokens(t *testing.T) {
	db, _ := openTest(t, nil)
	mustCreate(t, db, User{Username: "alice"})
	invite := mustToken(t, db, "alice", PurposeInvite, time.Hour)
	reset := mustToken(t, db, "alice", PurposeReset, time.Hour)
	if n, err := db.DeleteTokens("ALICE", PurposeInvite); n != 1 || err != nil {
		t.Errorf("DeleteTokens(invite) = %d, %v; want 1, nil", n, err)
	}
	wantToken(t, db, invite, PurposeInvite, "alice", false)
	wantToken(t, db, reset, PurposeReset, "alice", true)
	if n, err := db.DeleteTokens("alice", ""); n != 1 || err != nil {
		t.Errorf("DeleteTokens(all) = %d, %v; want 1, nil", n, err)
	}
	wantToken(t, db, reset, PurposeReset, "alice", false)
	if n, m := tokenRecords(t, db); n != 0 || m != 0 {
		t.Errorf("%d records, %d index entries; want 0, 0", n, m)
	}
}

func TestDeleteExpiredTokens(t *testing.T) {
	c := newClock()
	db, _ := openTest(t, c)
	mustCreate(t, db, User{Username: "alice"})
	mustCreate(t, db, User{Username: "bob"})
	mustToken(t, db, "alice", PurposeVerify, time.Hour)
	mustToken(t, db, "bob", PurposeReset, 30*time.Minute)
	long := mustToken(t, db, "alice", PurposeInvite, 7*24*time.Hour)
	c.add(time.Hour)
	if n, err := db.DeleteExpiredTokens(); n != 2 || err != nil {
		t.Errorf("DeleteExpiredTokens = %d, %v; want 2, nil", n, err)
	}
	wantToken(t, db, long, PurposeInvite, "alice", true)
	if n, m := tokenRecords(t, db); n != 1 || m != 1 {
		t.Errorf("%d records, %d index entries; want 1, 1", n, m)
	}
}

func TestCreateTokenRefusesBadRequests(t *testing.T) {
	db, _ := openTest(t, nil)
	mustCreate(t, db, User{Username: "alice"})
	tests := []struct {
		name, user, purpose string
		ttl                 time.Duration
	}{
		{"no user", "", PurposeReset, time.Hour},
		{"bad username", "al ice", PurposeReset, time.Hour},
		{"unknown purpose", "alice", "login", time.Hour},
		{"no purpose", "alice", "", time.Hour},
		{"no lifetime", "alice", PurposeReset, 0},
		{"negative lifetime", "alice", PurposeReset, -time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if raw, err := db.CreateToken(tc.user, tc.purpose, tc.ttl); !errors.Is(err, errBadToken) || raw != "" {
				t.Errorf("CreateToken = %q, %v; want \"\", errBadToken", raw, err)
			}
		})
	}
}

// The file holds sha256 of each token, never the token: a stolen backup
// resets no password.
func TestTokensAreNotInTheFile(t *testing.T) {
	db, path := openTest(t, nil)
	mustCreate(t, db, User{Username: "alice", Email: "alice@example.com"})
	raws := []string{
		mustToken(t, db, "alice", PurposeVerify, time.Hour),
		mustToken(t, db, "alice", PurposeReset, time.Hour),
		mustToken(t, db, "alice", PurposeInvite, time.Hour),
	}
	var backup bytes.Buffer
	if _, err := db.Backup(&backup); err != nil {
		t.Fatal(err)
	}
	db.Close()
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"file": file, "backup": backup.Bytes()} {
		for _, raw := range raws {
			b, _ := base64.RawURLEncoding.DecodeString(raw)
			if bytes.Contains(data, []byte(raw)) || bytes.Contains(data, b) {
				t.Errorf("a raw token is in the %s", name)
			}
		}
	}
}
