package policy

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrBadTarget is a request target the gateway refuses (400): it is
// ambiguous, or servers are known to read it differently. ParseTarget
// wraps it with the reason.
var ErrBadTarget = errors.New("policy: bad request target")

// Target is a parsed request target.
type Target struct {
	// Path is what rules match: escapes of unreserved characters decoded,
	// "." and ".." resolved, "//" collapsed, ";params" removed from every
	// segment, remaining escapes in upper-case hex, non-ASCII escaped.
	Path string
	// Forward is Path with each surviving segment's ";params" kept as
	// sent: exactly what the upstream receives, valid as URL.RawPath.
	Forward string
	// Query is the raw query without "?", forwarded unchanged.
	Query string
	// HasQuery reports a "?" in the target, even with an empty query.
	HasQuery bool
}

func badTarget(why string) error { return fmt.Errorf("%w: %s", ErrBadTarget, why) }

// ParseTarget canonicalizes a raw request target: origin-form ("/p?q") or
// absolute-form ("http://host/p?q", whose authority is ignored here; the
// Host header names the app). Rules match Target.Path and the upstream
// receives Target.Forward, so both read the same path. It refuses, with
// ErrBadTarget, what servers are known to read differently: encoded
// slashes and backslashes, raw backslashes, control bytes, fragments,
// double encoding, invalid escapes and UTF-8, raw spaces, and paths that
// climb above "/" (SPEC §4, docs/policy.md). A target that is already
// canonical is returned as substrings, without allocating.
func ParseTarget(target string) (Target, error) {
	path := target
	if !strings.HasPrefix(path, "/") {
		rest, ok := stripScheme(path)
		if !ok {
			return Target{}, badTarget("the target must start with / (or be http(s)://host/path)")
		}
		i := strings.IndexAny(rest, "/?#")
		switch {
		case i < 0:
			path = "/"
		case rest[i] == '/':
			path = rest[i:]
		default:
			path = "/" + rest[i:]
		}
	}
	var t Target
	if i := strings.IndexByte(path, '?'); i >= 0 {
		t.Query, t.HasQuery, path = path[i+1:], true, path[:i]
		if err := checkQuery(t.Query); err != nil {
			return Target{}, err
		}
	}
	if isCanonical(path) {
		t.Path, t.Forward = path, path
		return t, nil
	}
	p, f, err := canonicalPath(path)
	if err != nil {
		return Target{}, err
	}
	t.Path, t.Forward = p, f
	return t, nil
}

// stripScheme removes "http://authority" or "https://authority" (any case)
// and returns what follows the authority. An empty authority, or one with
// bytes no host, port or userinfo may hold, is refused.
func stripScheme(s string) (string, bool) {
	for _, scheme := range []string{"http://", "https://"} {
		if len(s) < len(scheme) || !strings.EqualFold(s[:len(scheme)], scheme) {
			continue
		}
		rest := s[len(scheme):]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		if end == 0 {
			return "", false
		}
		for i := 0; i < end; i++ {
			if c := rest[i]; c <= ' ' || c >= 0x7f || c == '\\' {
				return "", false
			}
		}
		return rest, true
	}
	return "", false
}

// checkQuery refuses raw bytes that no client may send in a target. The
// query is forwarded unchanged and never matched, so its escapes are left
// alone (?next=%2Fadmin is an ordinary query).
func checkQuery(q string) error {
	ascii := true
	for i := 0; i < len(q); i++ {
		switch c := q[i]; {
		case c < 0x20 || c == 0x7f:
			return badTarget("control character in the query")
		case c == ' ':
			return badTarget("space in the query")
		case c == '#':
			return badTarget("raw # in the target")
		case c >= 0x80:
			ascii = false
		}
	}
	if !ascii && !utf8.ValidString(q) {
		return badTarget("invalid UTF-8 in the query")
	}
	return nil
}

// isCanonical reports, without allocating, whether path needs no change:
// plain characters only (no escapes, no ";"), no empty, "." or ".."
// segments except one trailing slash.
func isCanonical(path string) bool {
	if path == "" || path[0] != '/' {
		return false
	}
	segStart := 1
	for i := 1; i <= len(path); i++ {
		if i < len(path) {
			c := path[i]
			if c != '/' {
				if c == ';' || !plainByte(c) {
					return false
				}
				continue
			}
		}
		seg := path[segStart:i]
		if seg == "." || seg == ".." || (seg == "" && i < len(path)) {
			return false
		}
		segStart = i + 1
	}
	return true
}

// plainByte is a byte that stays as it is in a canonical path: unreserved
// characters and the sub-delimiters ":" and "@" that RFC 3986 allows raw
// in a path segment.
func plainByte(c byte) bool {
	if unreserved(c) {
		return true
	}
	switch c {
	case '!', '$', '&', '\'', '(', ')', '*', '+', ',', '=', ':', '@', ';':
		return true
	}
	return false
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

const upperHex = "0123456789ABCDEF"

func appendEscape(b []byte, c byte) []byte {
	return append(b, '%', upperHex[c>>4], upperHex[c&15])
}

// appendSegment appends one raw segment name or ";params" part to b in
// canonical form: escapes of unreserved characters decoded, other escapes
// in upper-case hex, raw non-ASCII and characters a client should have
// escaped (", <, >, [, ], ^, `, {, |, }) escaped. It refuses what SPEC §4
// lists. Bytes >= 0x80, raw or escaped, must form valid UTF-8 (no
// overlong forms like %C0%AE, no lone %FF).
func appendSegment(b []byte, raw string) ([]byte, error) {
	var pend [utf8.UTFMax]byte // an incomplete UTF-8 sequence
	np := 0
	high := func(c byte) error {
		pend[np] = c
		np++
		if !utf8.FullRune(pend[:np]) {
			return nil
		}
		r, size := utf8.DecodeRune(pend[:np])
		if (r == utf8.RuneError && size <= 1) || size != np {
			return badTarget("invalid UTF-8")
		}
		np = 0
		return nil
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '%' {
			if i+2 >= len(raw) {
				return b, badTarget("incomplete %-escape")
			}
			hi, ok1 := unhex(raw[i+1])
			lo, ok2 := unhex(raw[i+2])
			if !ok1 || !ok2 {
				return b, badTarget("invalid %-escape")
			}
			d := hi<<4 | lo
			i += 2
			if d >= 0x80 {
				if err := high(d); err != nil {
					return b, err
				}
				b = appendEscape(b, d)
				continue
			}
			if np > 0 {
				return b, badTarget("invalid UTF-8")
			}
			switch {
			case d == '/' || d == '\\':
				return b, badTarget("encoded slash or backslash")
			case d < 0x20 || d == 0x7f:
				return b, badTarget("encoded control character")
			case d == '#':
				return b, badTarget("encoded #")
			case unreserved(d):
				b = append(b, d)
			default:
				b = appendEscape(b, d)
			}
			continue
		}
		if c >= 0x80 {
			if err := high(c); err != nil {
				return b, err
			}
			b = appendEscape(b, c)
			continue
		}
		if np > 0 {
			return b, badTarget("invalid UTF-8")
		}
		switch {
		case c < 0x20 || c == 0x7f:
			return b, badTarget("control character")
		case c == '\\':
			return b, badTarget("backslash")
		case c == '#':
			return b, badTarget("raw # in the target")
		case c == ' ':
			return b, badTarget("space")
		case plainByte(c):
			b = append(b, c)
		default:
			b = appendEscape(b, c)
		}
	}
	if np > 0 {
		return b, badTarget("invalid UTF-8")
	}
	return b, nil
}

// canonicalPath is the slow path of ParseTarget: one pass over the
// segments that writes the matched path and the forwarded path side by
// side. Buffers start on the stack, so a path that comes out unchanged
// (say "/files/My%20Doc.pdf") still costs no allocation.
func canonicalPath(path string) (match, forward string, err error) {
	var mbuf, fbuf [256]byte
	var stackBuf [32][2]int
	m, f := mbuf[:0], fbuf[:0]
	stack := stackBuf[:0] // where each kept segment starts in m and f
	rest := path[1:]
	trailing := false
	for {
		part, after, more := strings.Cut(rest, "/")
		rawName, rawParams, hasParams := strings.Cut(part, ";")
		ms, fs := len(m), len(f)
		m = append(m, '/')
		if m, err = appendSegment(m, rawName); err != nil {
			return "", "", err
		}
		f = append(f, m[ms:]...)
		if hasParams {
			f = append(f, ';')
			if f, err = appendSegment(f, rawParams); err != nil {
				return "", "", err
			}
		}
		switch name := m[ms+1:]; {
		case len(name) == 0 || string(name) == ".":
			m, f = m[:ms], f[:fs]
			trailing = !more
		case string(name) == "..":
			if len(stack) == 0 {
				return "", "", badTarget("the path climbs above /")
			}
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			m, f = m[:top[0]], f[:top[1]]
			trailing = !more
		default:
			stack = append(stack, [2]int{ms, fs})
			trailing = false
		}
		if !more {
			break
		}
		rest = after
	}
	if len(stack) == 0 || trailing {
		m = append(m, '/')
		f = append(f, '/')
	}
	if hasDoubleEncoding(f) {
		return "", "", badTarget("double-encoded dot, slash or backslash")
	}
	if string(f) == path {
		forward = path
	} else {
		forward = string(f)
	}
	switch {
	case string(m) == forward:
		match = forward
	case len(m) <= len(forward) && string(m) == forward[:len(m)]:
		match = forward[:len(m)] // "/app;jsessionid=1" matches as "/app"
	default:
		match = string(m)
	}
	return match, forward, nil
}

// hasDoubleEncoding finds "%25" followed by the escape of ".", "/" or "\"
// ("%252e", "%252F", "%255c", and deeper: "%25252e"): a server that
// decodes more than once would read a dot segment or a separator the
// rules never saw.
func hasDoubleEncoding(s []byte) bool {
	for i := 0; i+3 <= len(s); i++ {
		if s[i] != '%' || s[i+1] != '2' || s[i+2] != '5' {
			continue
		}
		j := i + 3
		for j+2 <= len(s) && s[j] == '2' && s[j+1] == '5' {
			j += 2
		}
		if j+2 <= len(s) {
			hi, lo := s[j], s[j+1]|0x20 // lower-case a hex letter
			if hi == '2' && (lo == 'e' || lo == 'f') || hi == '5' && lo == 'c' {
				return true
			}
		}
	}
	return false
}
