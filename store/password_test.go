package store

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// hashVectors are hashes made by other software that users import. The
// Werkzeug ones come from Werkzeug 3.1.8 itself (generate_password_hash,
// or _hash_internal for the forms that name no parameters); the bcrypt one
// is OpenBSD's test vector.
var hashVectors = []struct {
	name, hash, password string
}{
	{"werkzeug pbkdf2 sha256", "pbkdf2:sha256:1000$3LovYrmaXx9MmVd5$53dfc1e15e3cea33e6aaed9f24949540e79b5de7f105f5335db9228b2d778f2c", "correct horse"},
	{"werkzeug pbkdf2 sha512", "pbkdf2:sha512:2000$cRqYANLeA4lJqbt5$e13bc29c6d5f7fef9b84e78a26cbb80c1c0db3bb044333ffa7f57d79b0883ed9f6525dc5f79af80dc51b2164634f5e9e4ee13cedac664d85635658e69cb19c1d", "correct horse"},
	{"werkzeug pbkdf2 sha1", "pbkdf2:sha1:1500$oGdwTc9fjg9gCOl1$4b858aa488d03ed0a1f5203042669a912729e525", "correct horse"},
	{"werkzeug pbkdf2 UTF-8 password", "pbkdf2:sha256:1000$YLxds3mcIsEBEQDo$ea88dcf36ab7272b16d5f66bf275ed8f6ab7890be4d167827245a3972e09b97d", "pässwörd ✓"},
	{"werkzeug scrypt N=16384", "scrypt:16384:8:1$zNGZQFwrJwjLJxQU$4bd5741938f38db2ee194d82fe840786111d74fbd1af0a9dfab275af30da1c77d8f726ba6ffab3aa39c1d46697a39f4bf335cde65743b875766c15dfb4c7ab1c", "correct horse"},
	{"werkzeug scrypt default", "scrypt:32768:8:1$T4q5ms8Lr5d4lY7E$3c78493292836bb1d7ebe1736bf563c20651a2fcf8620595da9d4801b5e4548bb1b68309fe7d72003766dc9f532f783e26bf8674cc330a78279b16d006e2b35b", "correct horse"},
	{"werkzeug scrypt without parameters", "scrypt$Zx9Yw8Vu7Ts6Rq5P$08f5511abf745f8bc217ca3e21b67d66e1abc5a6195576d94ad31ffc6f9fc3e9ba439422351d6fef827764f2a6fd14ad362fce030e034ffd525cf031591683e4", "correct horse"},
	{"bcrypt 2a", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U"},
	{"bcrypt 2b", "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U"},
	{"bcrypt 2y (PHP)", "$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U"},
}

func TestImportedHashesVerifyAndAskForRehash(t *testing.T) {
	for _, v := range hashVectors {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			if err := ValidHash(v.hash); err != nil {
				t.Errorf("ValidHash = %v, want nil", err)
			}
			ok, rehash, err := VerifyPassword(v.hash, v.password)
			if !ok || !rehash || err != nil {
				t.Errorf("right password: got ok=%v rehash=%v err=%v, want ok=true rehash=true", ok, rehash, err)
			}
			ok, rehash, err = VerifyPassword(v.hash, v.password+"x")
			if ok || rehash || err != nil {
				t.Errorf("wrong password: got ok=%v rehash=%v err=%v, want all false", ok, rehash, err)
			}
		})
	}
}

func TestWerkzeugPBKDF2DefaultIterations(t *testing.T) {
	t.Parallel()
	// "pbkdf2:sha256$salt$hash" names no iteration count: Werkzeug 3.1
	// checks it with its default, 1,000,000 (made with _hash_internal).
	const h = "pbkdf2:sha256$Qw3rTy7uIoP1aSdF$68acb8045202ffefd396b5be4784a5aeafe3ba8c2c64161561fac720bba2b6ee"
	ok, rehash, err := VerifyPassword(h, "correct horse")
	if !ok || !rehash || err != nil {
		t.Errorf("got ok=%v rehash=%v err=%v, want ok=true rehash=true", ok, rehash, err)
	}
	// The bare method name means sha256 too.
	if err := ValidHash("pbkdf2$Qw3rTy7uIoP1aSdF$68acb8045202ffefd396b5be4784a5aeafe3ba8c2c64161561fac720bba2b6ee"); err != nil {
		t.Errorf("ValidHash(pbkdf2$...) = %v, want nil", err)
	}
}

func TestArgon2id(t *testing.T) {
	h, err := HashPassword("s3cret passphrase")
	if err != nil {
		t.Fatal(err)
	}
	if want := "$argon2id$v=19$m=19456,t=2,p=1$"; !strings.HasPrefix(h, want) {
		t.Errorf("HashPassword = %q, want prefix %q", h, want)
	}
	if h2, _ := HashPassword("s3cret passphrase"); h == h2 {
		t.Error("two hashes of one password are equal: no salt")
	}
	weak, err := HashPasswordParams("pw", Argon2Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, hash, password string
		ok, rehash           bool
	}{
		{"right password", h, "s3cret passphrase", true, false},
		{"wrong case", h, "s3cret passphrasE", false, false},
		{"empty password", h, "", false, false},
		{"weaker parameters", weak, "pw", true, true},
		{"weaker parameters, wrong password", weak, "pW", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, rehash, err := VerifyPassword(tc.hash, tc.password)
			if ok != tc.ok || rehash != tc.rehash || err != nil {
				t.Errorf("got ok=%v rehash=%v err=%v, want ok=%v rehash=%v", ok, rehash, err, tc.ok, tc.rehash)
			}
		})
	}
}

func TestHashPasswordParamsRefusesWhatVerifyRefuses(t *testing.T) {
	tests := []struct {
		name string
		p    Argon2Params
	}{
		{"zero", Argon2Params{}},
		{"no passes", Argon2Params{Memory: 19456, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32}},
		{"no threads", Argon2Params{Memory: 19456, Time: 2, Threads: 0, SaltLen: 16, KeyLen: 32}},
		{"1 GiB", Argon2Params{Memory: 1 << 20, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}},
		{"short salt", Argon2Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 4, KeyLen: 32}},
		{"short key", Argon2Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 8}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := HashPasswordParams("pw", tc.p)
			if !errors.Is(err, ErrUnknownHash) {
				t.Errorf("got %q, %v; want ErrUnknownHash", h, err)
			}
		})
	}
}

func TestBcryptRefusesLongPasswordsMatchingOnTheirPrefix(t *testing.T) {
	// bcrypt compares only 72 bytes; a longer password sharing them must fail.
	long := strings.Repeat("a", 72)
	hash, err := bcrypt.GenerateFromPassword([]byte(long), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, err := VerifyPassword(string(hash), long); !ok || err != nil {
		t.Fatalf("72-byte password: got ok=%v err=%v, want ok", ok, err)
	}
	if ok, _, err := VerifyPassword(string(hash), long+"extra"); ok || err != nil {
		t.Errorf("77-byte password sharing the first 72: got ok=%v err=%v, want a mismatch", ok, err)
	}
}

// TestHostileHashes pins down hashes an import or a tampered database could
// carry to burn CPU or memory on every sign-in attempt, and plain garbage.
func TestHostileHashes(t *testing.T) {
	const salt16 = "c2FsdHNhbHRzYWx0c2FsdA" // 16 bytes
	const key32 = "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
	hex32 := strings.Repeat("ab", 32)
	hex64 := strings.Repeat("ab", 64)
	tests := []struct{ name, hash string }{
		{"empty", ""},
		{"plain text", "plaintext"},
		{"argon2i", "$argon2i$v=19$m=65536,t=3,p=4$" + salt16 + "$" + key32},
		{"argon2id 4 GiB", "$argon2id$v=19$m=4194304,t=1,p=1$" + salt16 + "$" + key32},
		{"argon2id 1000 passes", "$argon2id$v=19$m=19456,t=1000,p=1$" + salt16 + "$" + key32},
		{"argon2id 128 MiB x 16 passes", "$argon2id$v=19$m=131072,t=16,p=1$" + salt16 + "$" + key32},
		{"argon2id 255 threads", "$argon2id$v=19$m=19456,t=2,p=255$" + salt16 + "$" + key32},
		{"argon2id huge numbers", "$argon2id$v=19$m=99999999999999999999,t=2,p=1$" + salt16 + "$" + key32},
		{"argon2id bad salt", "$argon2id$v=19$m=19456,t=2,p=1$!!$" + key32},
		{"argon2id short salt", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$" + key32},
		{"argon2id short key", "$argon2id$v=19$m=19456,t=2,p=1$" + salt16 + "$aGFzaA"},
		{"argon2id old version", "$argon2id$v=16$m=19456,t=2,p=1$" + salt16 + "$" + key32},
		{"argon2id extra parameter", "$argon2id$v=19$m=19456,t=2,p=1,x=1$" + salt16 + "$" + key32},
		{"argon2id missing parameter", "$argon2id$v=19$m=19456,t=2$" + salt16 + "$" + key32},
		{"argon2id repeated parameter", "$argon2id$v=19$m=19456,m=8,t=2$" + salt16 + "$" + key32},
		{"bcrypt cost 31", "$2a$31$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"},
		{"bcrypt truncated", "$2a$05$short"},
		{"pbkdf2 a billion iterations", "pbkdf2:sha256:999999999$salt$" + hex32},
		{"pbkdf2 zero iterations", "pbkdf2:sha256:0$salt$" + hex32},
		{"pbkdf2 md5", "pbkdf2:md5:1000$salt$" + strings.Repeat("ab", 16)},
		{"pbkdf2 hash of the wrong length", "pbkdf2:sha256:1000$salt$" + strings.Repeat("ab", 16)},
		{"pbkdf2 empty hash name", "pbkdf2:$salt$" + hex32},
		{"pbkdf2 too many arguments", "pbkdf2:sha256:1000:1$salt$" + hex32},
		{"pbkdf2 not hex", "pbkdf2:sha256:1000$salt$nothex"},
		{"pbkdf2 no salt", "pbkdf2:sha256:1000$$" + hex32},
		{"pbkdf2 huge salt", "pbkdf2:sha256:1000$" + strings.Repeat("s", 1000) + "$" + hex32},
		{"scrypt 8 GiB", "scrypt:1048576:64:1$salt$" + hex64},
		{"scrypt 16 lanes of 128 MiB", "scrypt:131072:8:16$salt$" + hex64},
		{"scrypt overflowing parameters", "scrypt:268435456:268435456:268435456$salt$" + hex64},
		{"scrypt N not a power of 2", "scrypt:1000:8:1$salt$" + hex64},
		{"scrypt two parameters", "scrypt:16384:8$salt$" + hex64},
		{"scrypt short key", "scrypt:16384:8:1$salt$" + hex32},
		{"werkzeug plain sha1", "sha1$salt$abc"},
		{"werkzeug plain", "plain$$secret"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, rehash, err := VerifyPassword(tc.hash, "anything")
			if ok || rehash || !errors.Is(err, ErrUnknownHash) {
				t.Errorf("VerifyPassword = %v, %v, %v; want false, false, ErrUnknownHash", ok, rehash, err)
			}
			if err := ValidHash(tc.hash); !errors.Is(err, ErrUnknownHash) {
				t.Errorf("ValidHash = %v, want ErrUnknownHash", err)
			}
		})
	}
}

func FuzzVerifyPassword(f *testing.F) {
	for _, v := range hashVectors {
		if !strings.HasPrefix(v.hash, "scrypt") { // seconds under -race
			f.Add(v.hash, v.password)
		}
	}
	f.Add("scrypt:16$salt$"+strings.Repeat("ab", 64), "x")
	f.Add("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "x")
	f.Fuzz(func(t *testing.T, hash, password string) {
		// Never panics; an unreadable hash is ErrUnknownHash and never a
		// match; ValidHash agrees with VerifyPassword on what it can read.
		ok, rehash, err := VerifyPassword(hash, password)
		if err != nil && (ok || rehash) {
			t.Fatalf("got ok=%v rehash=%v with err %v", ok, rehash, err)
		}
		if valid := ValidHash(hash); (valid == nil) != (err == nil) {
			t.Fatalf("ValidHash = %v but VerifyPassword err = %v", valid, err)
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
	b.ReportAllocs()
	for b.Loop() {
		VerifyDummy("correct horse battery staple")
	}
}
