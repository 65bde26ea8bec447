package store

import (
	"errors"

	"golang.org/x/crypto/bcrypt"
	"strings"
	"testing"
)

// Vectors made with Werkzeug's algorithm (hashlib.pbkdf2_hmac and
// hashlib.scrypt over the salt's text, hex output) and OpenBSD's bcrypt
// test vector.
var hashVectors = []struct {
	name, hash, password string
}{
	{"werkzeug pbkdf2 sha256", "pbkdf2:sha256:1000$aB3dE5gH7jK9mN1p$383009624ae1e6493ff8f3c047469c9f7a4cceaed67155508d8b4b0f38087bb4", "correct horse"},
	{"werkzeug pbkdf2 sha512", "pbkdf2:sha512:2000$aB3dE5gH7jK9mN1p$925085bdccba40ed83f0ebfdf9a48e1aecb347e06e63530bab508db92311a10412a12ae7958193d4c2a16de8639ec3433365ec86936cad317e0646aac7e2a82d", "correct horse"},
	{"werkzeug scrypt", "scrypt:16384:8:1$Zx9Yw8Vu7Ts6Rq5P$c7ce4786ef08aa408f5f42f8b68a6c98df547bd7f13c9e2cc155cfcd74b8bc3aa13e99fda28699fe8bfe9fe36a6e6faea1fceb994b1a7699cb2aab67538c1df6", "correct horse"},
	{"bcrypt 2a", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U"},
	{"bcrypt 2b", "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U"},
	{"bcrypt 2y (PHP)", "$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U"},
}

func TestLegacyHashesVerifyAndAskForRehash(t *testing.T) {
	for _, v := range hashVectors {
		t.Run(v.name, func(t *testing.T) {
			ok, rehash, err := VerifyPassword(v.hash, v.password)
			if !ok || !rehash || err != nil {
				t.Errorf("right password: ok=%v rehash=%v err=%v, want ok and rehash", ok, rehash, err)
			}
			ok, _, err = VerifyPassword(v.hash, v.password+"x")
			if ok || err != nil {
				t.Errorf("wrong password: ok=%v err=%v", ok, err)
			}
			if err := ValidHash(v.hash); err != nil {
				t.Errorf("ValidHash: %v", err)
			}
		})
	}
}

func TestArgon2id(t *testing.T) {
	h, err := HashPassword("s3cret passphrase")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q", h)
	}
	if ok, rehash, err := VerifyPassword(h, "s3cret passphrase"); !ok || rehash || err != nil {
		t.Errorf("right password: %v %v %v", ok, rehash, err)
	}
	if ok, _, _ := VerifyPassword(h, "s3cret passphrasE"); ok {
		t.Error("wrong password accepted")
	}
	weak, _ := HashPasswordParams("pw", Argon2Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if ok, rehash, _ := VerifyPassword(weak, "pw"); !ok || !rehash {
		t.Errorf("weaker argon2id params: ok=%v rehash=%v, want a rehash", ok, rehash)
	}
	h2, _ := HashPassword("s3cret passphrase")
	if h == h2 {
		t.Error("two hashes of one password are equal: no salt")
	}
}

func TestBcryptRefusesLongPasswordsMatchingOnTheirPrefix(t *testing.T) {
	// bcrypt compares only 72 bytes; a 73-byte password sharing them must fail.
	long := strings.Repeat("a", 72)
	hash, err := bcryptHashOf(long)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := VerifyPassword(hash, long); !ok {
		t.Fatal("72-byte password rejected")
	}
	if ok, _, _ := VerifyPassword(hash, long+"extra"); ok {
		t.Error("a longer password matched on its first 72 bytes")
	}
}

func TestHostileHashes(t *testing.T) {
	tests := []string{
		"", "plaintext", "$argon2i$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",  // 4 GiB
		"$argon2id$v=19$m=19456,t=1000,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", // 1000 passes
		"$argon2id$v=19$m=19456,t=2,p=1$!!$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=16$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=19456,t=2,p=1,x=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$2a$31$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", // cost 31
		"$2a$05$short",
		"pbkdf2:sha256:999999999$salt$383009624ae1e6493ff8f3c047469c9f7a4cceaed67155508d8b4b0f38087bb4",
		"pbkdf2:md5:1000$salt$383009624ae1e6493ff8f3c047469c9f",
		"pbkdf2:sha256$salt$383009624ae1e6493ff8f3c047469c9f7a4cceaed67155508d8b4b0f38087bb4",
		"pbkdf2:sha256:1000$salt$nothex",
		"scrypt:1048576:64:1$salt$c7ce4786ef08aa408f5f42f8b68a6c98df547bd7f13c9e2cc155cfcd74b8bc3a", // 8 GiB
		"scrypt:1000:8:1$salt$c7ce4786ef08aa408f5f42f8b68a6c98df547bd7f13c9e2cc155cfcd74b8bc3a",     // N not a power of 2
		"scrypt:16384:8$salt$c7ce4786ef08aa408f5f42f8b68a6c98",
		"sha1$salt$abc",
	}
	for _, h := range tests {
		ok, _, err := VerifyPassword(h, "anything")
		if ok || !errors.Is(err, ErrUnknownHash) {
			t.Errorf("VerifyPassword(%q) = %v, %v; want ErrUnknownHash", h, ok, err)
		}
		if ValidHash(h) == nil {
			t.Errorf("ValidHash(%q) accepted it", h)
		}
	}
}

func FuzzVerifyPassword(f *testing.F) {
	for _, v := range hashVectors {
		f.Add(v.hash, v.password)
	}
	f.Add("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "x")
	f.Fuzz(func(t *testing.T, hash, password string) {
		// Never panics; an unreadable hash is ErrUnknownHash, never a match.
		ok, _, err := VerifyPassword(hash, password)
		if err != nil && ok {
			t.Fatal("ok with an error")
		}
	})
}

func BenchmarkHashPassword(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := HashPassword("correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyDummy(b *testing.B) {
	for b.Loop() {
		VerifyDummy("correct horse battery staple")
	}
}

func bcryptHashOf(p string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(p), 4)
	return string(h), err
}
