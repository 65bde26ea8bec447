package store

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/scrypt"
)

// Argon2Params are argon2id parameters.
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
	SaltLen uint32
	KeyLen  uint32
}

// DefaultArgon2 is what new hashes use: m=19 MiB, t=2, p=1, the OWASP
// Password Storage Cheat Sheet's first recommendation for argon2id. It
// costs about 20-25 ms of one core; memory is per concurrent hash, so the
// sign-in handler bounds how many run at once.
var DefaultArgon2 = Argon2Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Bounds on the parameters of hashes we verify: an imported or tampered
// hash must not cost minutes of CPU or gigabytes of memory per attempt.
const (
	maxArgon2Memory  = 256 * 1024 // KiB
	maxArgon2Time    = 16
	maxArgon2Threads = 16
	maxBcryptCost    = 14
	maxPBKDF2Iter    = 2_000_000
	maxScryptMem     = 256 << 20 // bytes: 128 * N * r
	maxScryptP       = 16
)

// HashPassword hashes a password with argon2id and DefaultArgon2, in the
// PHC string format: $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>.
func HashPassword(password string) (string, error) {
	return HashPasswordParams(password, DefaultArgon2)
}

// HashPasswordParams hashes with explicit argon2id parameters.
func HashPasswordParams(password string, p Argon2Params) (string, error) {
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// dummySalt salts VerifyDummy's hash; it never verifies anything.
var dummySalt = []byte("gatehouse-dummy!")

// VerifyDummy costs what verifying a DefaultArgon2 hash costs. Sign-in
// calls it for unknown users so that timing does not tell which accounts
// exist.
func VerifyDummy(password string) {
	p := DefaultArgon2
	_ = argon2.IDKey([]byte(password), dummySalt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

// VerifyPassword checks password against hash, in constant time for the
// comparison. rehash is true when the password is right but the hash is not
// argon2id with DefaultArgon2's parameters. err wraps ErrUnknownHash for a
// hash it cannot read.
func VerifyPassword(hash, password string) (ok, rehash bool, err error) {
	v, err := parseHash(hash)
	if err != nil {
		return false, false, err
	}
	ok, err = v.verify(password)
	if err != nil || !ok {
		return false, false, err
	}
	return true, !v.current(), nil
}

// ValidHash reports whether hash is in a known format with sane
// parameters (for `user import`).
func ValidHash(hash string) error {
	_, err := parseHash(hash)
	return err
}

// verifier is one parsed hash.
type verifier interface {
	verify(password string) (bool, error)
	current() bool
}

func badHash(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnknownHash, fmt.Sprintf(format, args...))
}

func parseHash(h string) (verifier, error) {
	switch {
	case strings.HasPrefix(h, "$argon2id$"):
		return parseArgon2(h)
	case strings.HasPrefix(h, "$2a$"), strings.HasPrefix(h, "$2b$"), strings.HasPrefix(h, "$2y$"):
		cost, err := bcrypt.Cost([]byte(h))
		if err != nil {
			return nil, badHash("bcrypt: %v", err)
		}
		if cost > maxBcryptCost {
			return nil, badHash("bcrypt cost %d is above %d", cost, maxBcryptCost)
		}
		return bcryptHash(h), nil
	case strings.HasPrefix(h, "pbkdf2:"):
		return parsePBKDF2(h)
	case strings.HasPrefix(h, "scrypt:"):
		return parseScrypt(h)
	case h == "":
		return nil, badHash("no password set")
	}
	return nil, badHash("expected argon2id, bcrypt, or Werkzeug pbkdf2/scrypt")
}

type argon2Hash struct {
	p         Argon2Params
	salt, key []byte
}

func parseArgon2(h string) (*argon2Hash, error) {
	parts := strings.Split(h, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[2] != "v=19" {
		return nil, badHash("argon2id: want $argon2id$v=19$m=..,t=..,p=..$salt$hash")
	}
	var a argon2Hash
	var m, t, p uint64
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, badHash("argon2id: bad parameter %q", kv)
		}
		switch k {
		case "m":
			m = n
		case "t":
			t = n
		case "p":
			p = n
		default:
			return nil, badHash("argon2id: unknown parameter %q", k)
		}
	}
	if m < 8 || m > maxArgon2Memory || t < 1 || t > maxArgon2Time || p < 1 || p > maxArgon2Threads || m < 8*p {
		return nil, badHash("argon2id: parameters m=%d t=%d p=%d out of bounds", m, t, p)
	}
	var err error
	if a.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(a.salt) < 8 {
		return nil, badHash("argon2id: bad salt")
	}
	if a.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(a.key) < 16 || len(a.key) > 128 {
		return nil, badHash("argon2id: bad hash")
	}
	a.p = Argon2Params{Memory: uint32(m), Time: uint32(t), Threads: uint8(p), SaltLen: uint32(len(a.salt)), KeyLen: uint32(len(a.key))}
	return &a, nil
}

func (a *argon2Hash) verify(password string) (bool, error) {
	key := argon2.IDKey([]byte(password), a.salt, a.p.Time, a.p.Memory, a.p.Threads, a.p.KeyLen)
	return subtle.ConstantTimeCompare(key, a.key) == 1, nil
}

func (a *argon2Hash) current() bool {
	d := DefaultArgon2
	return a.p.Memory == d.Memory && a.p.Time == d.Time && a.p.Threads == d.Threads && a.p.KeyLen == d.KeyLen && a.p.SaltLen >= d.SaltLen
}

type bcryptHash string

func (b bcryptHash) verify(password string) (bool, error) {
	// bcrypt reads only the first 72 bytes: refuse longer passwords
	// rather than let one match on its prefix.
	if len(password) > 72 {
		return false, nil
	}
	h := string(b)
	if strings.HasPrefix(h, "$2y$") {
		h = "$2b$" + h[4:] // PHP's $2y$ is the same algorithm
	}
	return bcrypt.CompareHashAndPassword([]byte(h), []byte(password)) == nil, nil
}

func (bcryptHash) current() bool { return false }

// werkzeugHash is Werkzeug's "method$salt$hexhash" (Flask apps): the salt
// is used as text, the hash is hex.
type werkzeugHash struct {
	salt   string
	want   []byte
	derive func(password string) ([]byte, error)
}

func splitWerkzeug(h string) (method, salt string, want []byte, err error) {
	parts := strings.Split(h, "$")
	if len(parts) != 3 || parts[1] == "" {
		return "", "", nil, badHash("werkzeug: want method$salt$hash")
	}
	want, err = hex.DecodeString(parts[2])
	if err != nil || len(want) < 16 {
		return "", "", nil, badHash("werkzeug: the hash is not hex")
	}
	return parts[0], parts[1], want, nil
}

func parsePBKDF2(h string) (*werkzeugHash, error) {
	method, salt, want, err := splitWerkzeug(h)
	if err != nil {
		return nil, err
	}
	args := strings.Split(method, ":") // pbkdf2:sha256:600000
	if len(args) != 3 {
		return nil, badHash("pbkdf2: want pbkdf2:HASH:ITERATIONS")
	}
	var newHash func() hash.Hash
	switch args[1] {
	case "sha256":
		newHash = sha256.New
	case "sha512":
		newHash = sha512.New
	case "sha1":
		newHash = sha1.New
	default:
		return nil, badHash("pbkdf2: unsupported hash %q", args[1])
	}
	iter, err := strconv.Atoi(args[2])
	if err != nil || iter < 1 || iter > maxPBKDF2Iter {
		return nil, badHash("pbkdf2: iterations %q out of bounds", args[2])
	}
	if len(want) != newHash().Size() {
		return nil, badHash("pbkdf2: hash length %d does not fit %s", len(want), args[1])
	}
	return &werkzeugHash{salt: salt, want: want, derive: func(password string) ([]byte, error) {
		return pbkdf2.Key(newHash, password, []byte(salt), iter, len(want))
	}}, nil
}

func parseScrypt(h string) (*werkzeugHash, error) {
	method, salt, want, err := splitWerkzeug(h)
	if err != nil {
		return nil, err
	}
	args := strings.Split(method, ":") // scrypt:32768:8:1
	if len(args) != 4 {
		return nil, badHash("scrypt: want scrypt:N:r:p")
	}
	var nrp [3]int
	for i, a := range args[1:] {
		if nrp[i], err = strconv.Atoi(a); err != nil || nrp[i] < 1 {
			return nil, badHash("scrypt: bad parameter %q", a)
		}
	}
	n, r, p := nrp[0], nrp[1], nrp[2]
	if n < 2 || n&(n-1) != 0 || r > 64 || p > maxScryptP || int64(128)*int64(n)*int64(r) > maxScryptMem {
		return nil, badHash("scrypt: parameters N=%d r=%d p=%d out of bounds", n, r, p)
	}
	return &werkzeugHash{salt: salt, want: want, derive: func(password string) ([]byte, error) {
		return scrypt.Key([]byte(password), []byte(salt), n, r, p, len(want))
	}}, nil
}

func (w *werkzeugHash) verify(password string) (bool, error) {
	got, err := w.derive(password)
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	return subtle.ConstantTimeCompare(got, w.want) == 1, nil
}

func (*werkzeugHash) current() bool { return false }
