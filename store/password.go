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
// hash must not cost more than about a second of CPU or 256 MiB of memory
// per attempt. OWASP's and Werkzeug's recommended parameters sit well
// inside them; RFC 9106's 2 GiB first choice for argon2id does not.
const (
	maxArgon2Memory  = 256 * 1024 // KiB
	maxArgon2Work    = 1 << 20    // KiB × passes: 256 MiB × 4, or 64 MiB × 16
	maxArgon2Time    = 16
	maxArgon2Threads = 16
	maxBcryptCost    = 14
	maxPBKDF2Iter    = 2_000_000
	maxScryptWork    = 256 << 20 // bytes × lanes: 128·N·r·p, which also bounds the memory 128·N·r
	maxSaltLen       = 256
)

// werkzeugPBKDF2Iterations is what Werkzeug 3.1 (DEFAULT_PBKDF2_ITERATIONS)
// uses for a "pbkdf2:sha256$salt$hash" that names no iteration count.
// Werkzeug's generate_password_hash always writes the count, so only a
// hand-made hash takes this path.
const werkzeugPBKDF2Iterations = 1_000_000

// Werkzeug's scrypt defaults, for a "scrypt$salt$hash" without parameters.
const (
	werkzeugScryptN      = 1 << 15
	werkzeugScryptR      = 8
	werkzeugScryptP      = 1
	werkzeugScryptKeyLen = 64 // hashlib.scrypt's dklen
)

// HashPassword hashes a password with argon2id and DefaultArgon2, in the
// PHC string format: $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>.
func HashPassword(password string) (string, error) {
	return HashPasswordParams(password, DefaultArgon2)
}

// HashPasswordParams hashes with explicit argon2id parameters. Parameters
// that VerifyPassword would refuse are refused here too (ErrUnknownHash,
// wrapped), so it never writes a hash that cannot be checked.
func HashPasswordParams(password string, p Argon2Params) (string, error) {
	if err := p.check(); err != nil {
		return "", err
	}
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

// VerifyPassword checks password against hash, comparing in constant time.
// It reads argon2id (PHC), bcrypt ($2a$, $2b$, $2y$) and Werkzeug's pbkdf2
// and scrypt formats. rehash is true when the password is right but the
// hash is not argon2id with DefaultArgon2's parameters. err wraps
// ErrUnknownHash for a hash it cannot read or whose parameters would cost
// more than about a second or 256 MiB: such a hash is refused before any
// work is done. A password over 72 bytes never matches a bcrypt hash, which
// would compare only its first 72.
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
			return nil, fmt.Errorf("%w: bcrypt: %w", ErrUnknownHash, err)
		}
		if cost > maxBcryptCost {
			return nil, badHash("bcrypt cost %d is above %d", cost, maxBcryptCost)
		}
		return bcryptHash(h), nil
	case strings.HasPrefix(h, "pbkdf2:"), strings.HasPrefix(h, "pbkdf2$"):
		return parsePBKDF2(h)
	case strings.HasPrefix(h, "scrypt:"), strings.HasPrefix(h, "scrypt$"):
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

// check applies the bounds every argon2id hash must meet, made or verified.
func (p Argon2Params) check() error {
	m, t, n := uint64(p.Memory), uint64(p.Time), uint64(p.Threads)
	if t < 1 || t > maxArgon2Time || n < 1 || n > maxArgon2Threads ||
		m < 8*n || m > maxArgon2Memory || m*t > maxArgon2Work {
		return badHash("argon2id: parameters m=%d t=%d p=%d out of bounds", m, t, n)
	}
	if p.SaltLen < 8 || p.SaltLen > 64 {
		return badHash("argon2id: salt length %d out of bounds", p.SaltLen)
	}
	if p.KeyLen < 16 || p.KeyLen > 128 {
		return badHash("argon2id: key length %d out of bounds", p.KeyLen)
	}
	return nil
}

func parseArgon2(h string) (*argon2Hash, error) {
	parts := strings.Split(h, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[2] != "v=19" {
		return nil, badHash("argon2id: want $argon2id$v=19$m=..,t=..,p=..$salt$hash")
	}
	kvs := strings.Split(parts[3], ",")
	if len(kvs) != 3 {
		return nil, badHash("argon2id: want m=..,t=..,p=..")
	}
	var m, t, p uint64
	for i, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || k != [...]string{"m", "t", "p"}[i] {
			return nil, badHash("argon2id: bad parameter %q", kv)
		}
		switch i {
		case 0:
			m = n
		case 1:
			t = n
		case 2:
			p = n
		}
	}
	if p > maxArgon2Threads {
		return nil, badHash("argon2id: parameters m=%d t=%d p=%d out of bounds", m, t, p)
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return nil, badHash("argon2id: the salt is not base64")
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		return nil, badHash("argon2id: the hash is not base64")
	}
	a := &argon2Hash{salt: salt, key: key, p: Argon2Params{Memory: uint32(m), Time: uint32(t), Threads: uint8(p),
		SaltLen: uint32(min(len(salt), 1<<16)), KeyLen: uint32(min(len(key), 1<<16))}}
	if err := a.p.check(); err != nil {
		return nil, err
	}
	return a, nil
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

// werkzeugHash is Werkzeug's (Flask's) "method$salt$hexhash", as its
// security.py writes and checks it: the salt and the password are used as
// their UTF-8 text, the derived key is compared as hex.
type werkzeugHash struct {
	want   []byte
	derive func(password string) ([]byte, error)
}

// splitWerkzeug splits "method:arg:arg$salt$hexhash" into the method's
// arguments (after the name), the salt and the decoded hash.
func splitWerkzeug(h string) (args []string, salt string, want []byte, err error) {
	parts := strings.Split(h, "$")
	if len(parts) != 3 || parts[1] == "" || len(parts[1]) > maxSaltLen {
		return nil, "", nil, badHash("werkzeug: want method$salt$hash")
	}
	want, err = hex.DecodeString(parts[2])
	if err != nil {
		return nil, "", nil, badHash("werkzeug: the hash is not hex")
	}
	args = strings.Split(parts[0], ":")
	return args[1:], parts[1], want, nil
}

// pbkdf2Hashes are the hashlib names a Werkzeug pbkdf2 hash may name.
var pbkdf2Hashes = map[string]func() hash.Hash{
	"sha1": sha1.New, "sha224": sha256.New224, "sha256": sha256.New,
	"sha384": sha512.New384, "sha512": sha512.New,
}

// parsePBKDF2 reads pbkdf2:HASH:ITERATIONS$salt$hash, where Werkzeug lets
// ITERATIONS (then HASH too) be left out: sha256, werkzeugPBKDF2Iterations.
func parsePBKDF2(h string) (*werkzeugHash, error) {
	args, salt, want, err := splitWerkzeug(h)
	if err != nil {
		return nil, err
	}
	name, iter := "sha256", werkzeugPBKDF2Iterations
	switch len(args) {
	case 0:
	case 1:
		name = args[0]
	case 2:
		name = args[0]
		if iter, err = strconv.Atoi(args[1]); err != nil || iter < 1 || iter > maxPBKDF2Iter {
			return nil, badHash("pbkdf2: iterations %q out of bounds", args[1])
		}
	default:
		return nil, badHash("pbkdf2: want pbkdf2:HASH:ITERATIONS")
	}
	newHash, ok := pbkdf2Hashes[name]
	if !ok {
		return nil, badHash("pbkdf2: unsupported hash %q", name)
	}
	if len(want) != newHash().Size() {
		return nil, badHash("pbkdf2: hash length %d does not fit %s", len(want), name)
	}
	return &werkzeugHash{want: want, derive: func(password string) ([]byte, error) {
		return pbkdf2.Key(newHash, password, []byte(salt), iter, len(want))
	}}, nil
}

// parseScrypt reads scrypt:N:r:p$salt$hash, or scrypt$salt$hash with
// Werkzeug's defaults. The key is always 64 bytes, as hashlib.scrypt makes it.
func parseScrypt(h string) (*werkzeugHash, error) {
	args, salt, want, err := splitWerkzeug(h)
	if err != nil {
		return nil, err
	}
	n, r, p := werkzeugScryptN, werkzeugScryptR, werkzeugScryptP
	switch len(args) {
	case 0:
	case 3:
		var nrp [3]int
		for i, a := range args {
			if nrp[i], err = strconv.Atoi(a); err != nil || nrp[i] < 1 || nrp[i] > maxScryptWork {
				return nil, badHash("scrypt: bad parameter %q", a)
			}
		}
		n, r, p = nrp[0], nrp[1], nrp[2]
	default:
		return nil, badHash("scrypt: want scrypt:N:r:p")
	}
	// Each factor is at most 2^28, so no product below overflows.
	nr := int64(n) * int64(r)
	if n < 2 || n&(n-1) != 0 || nr > maxScryptWork/128 || nr*int64(p) > maxScryptWork/128 {
		return nil, badHash("scrypt: parameters N=%d r=%d p=%d out of bounds", n, r, p)
	}
	if len(want) != werkzeugScryptKeyLen {
		return nil, badHash("scrypt: hash length %d, want %d", len(want), werkzeugScryptKeyLen)
	}
	return &werkzeugHash{want: want, derive: func(password string) ([]byte, error) {
		return scrypt.Key([]byte(password), []byte(salt), n, r, p, werkzeugScryptKeyLen)
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
