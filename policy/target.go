package policy

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrBadTarget is a request target the gateway refuses (400): it is
// ambiguous, or servers are known to read it differently.
var ErrBadTarget = errors.New("policy: bad request target")

// Target is a parsed request target.
type Target struct {
	// Path is what rules match: escapes of unreserved characters decoded,
	// "." and ".." resolved, "//" collapsed, ";params" removed from every
	// segment, remaining escapes in upper-case hex, non-ASCII escaped.
	Path string
	// Forward is Path with each segment's ";params" kept: exactly what
	// the upstream receives.
	Forward string
	// Query is the raw query without "?", forwarded unchanged.
	Query string
	// HasQuery reports a "?" in the target, even with an empty query.
	HasQuery bool
}

func badTarget(why string) error { return fmt.Errorf("%w: %s", ErrBadTarget, why) }

// ParseTarget canonicalizes a raw request target: origin-form ("/p?q") or
// absolute-form ("http://host/p?q"). See SPEC §4 and docs/policy.md for
// what it refuses.
func ParseTarget(target string) (Target, error) {
	path := target
	if !strings.HasPrefix(path, "/") {
		rest, ok := stripScheme(path)
		if !ok {
			return Target{}, badTarget("the target must start with /")
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
		if strings.IndexByte(path, ';') >= 0 {
			// Canonical but with params: Path drops them.
			p, f, err := canonicalPath(path)
			if err != nil {
				return Target{}, err
			}
			t.Path, t.Forward = p, f
		}
		return t, nil
	}
	p, f, err := canonicalPath(path)
	if err != nil {
		return Target{}, err
	}
	t.Path, t.Forward = p, f
	return t, nil
}

// stripScheme removes "http://authority" or "https://authority" (any case).
func stripScheme(s string) (string, bool) {
	for _, scheme := range []string{"http://", "https://"} {
		if len(s) >= len(scheme) && strings.EqualFold(s[:len(scheme)], scheme) {
			rest := s[len(scheme):]
			if rest == "" || rest[0] == '/' || rest[0] == '?' {
				return "", false // no authority
			}
			return rest, true
		}
	}
	return "", false
}

// checkQuery refuses raw bytes that no client may send in a target.
func checkQuery(q string) error {
	for i := 0; i < len(q); i++ {
		switch c := q[i]; {
		case c < 0x20 || c == 0x7f || c == ' ':
			return badTarget("control character or space in the query")
		case c == '#':
			return badTarget("raw # in the target")
		}
	}
	return nil
}

// isCanonical reports, without allocating, whether path needs no change:
// plain characters only, no empty, "." or ".." segments.
func isCanonical(path string) bool {
	if path == "" || path[0] != '/' {
		return false
	}
	segStart := 1
	for i := 1; i <= len(path); i++ {
		if i < len(path) {
			c := path[i]
			if c != '/' {
				if !plainByte(c) {
					return false
				}
				continue
			}
		}
		seg := path[segStart:i]
		if name, _, _ := strings.Cut(seg, ";"); name == "." || name == ".." || (name == "" && (i < len(path) || seg != "")) {
			return false
		}
		segStart = i + 1
	}
	return true
}

// plainByte is a byte that stays as it is in a canonical path.
func plainByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', '=', ':', '@', ';':
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

// normalizeSegment decodes the escapes of unreserved characters in one raw
// segment (name or params), upper-cases the others, escapes raw non-ASCII,
// and refuses what SPEC §4 lists.
func normalizeSegment(raw string, b *strings.Builder) error {
	var utf []byte // pending bytes >= 0x80, raw or escaped, checked as UTF-8
	flush := func() error {
		if len(utf) == 0 {
			return nil
		}
		if !utf8.Valid(utf) {
			return badTarget("invalid UTF-8")
		}
		for _, c := range utf {
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		}
		utf = utf[:0]
		return nil
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '%' {
			if i+2 >= len(raw) {
				return badTarget("incomplete %-escape")
			}
			hi, ok1 := unhex(raw[i+1])
			lo, ok2 := unhex(raw[i+2])
			if !ok1 || !ok2 {
				return badTarget("invalid %-escape")
			}
			d := hi<<4 | lo
			i += 2
			switch {
			case d >= 0x80:
				utf = append(utf, d)
				continue
			case d == '/' || d == '\\':
				return badTarget("encoded slash or backslash")
			case d < 0x20 || d == 0x7f:
				return badTarget("encoded control character")
			case d == '#':
				return badTarget("encoded #")
			}
			if err := flush(); err != nil {
				return err
			}
			if unreserved(d) {
				b.WriteByte(d)
			} else {
				b.WriteByte('%')
				b.WriteByte(upperHex[d>>4])
				b.WriteByte(upperHex[d&15])
			}
			continue
		}
		if c >= 0x80 {
			utf = append(utf, c)
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		switch {
		case c < 0x20 || c == 0x7f:
			return badTarget("control character")
		case c == '\\':
			return badTarget("backslash")
		case c == '#':
			return badTarget("raw # in the target")
		case c == ' ':
			return badTarget("space")
		case plainByte(c) || c == '/':
			b.WriteByte(c)
		default:
			// Characters a client should have escaped (", <, >, [, ], ^, `, {, |, }).
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		}
	}
	return flush()
}

// canonicalPath is the slow path of ParseTarget.
func canonicalPath(path string) (match, forward string, err error) {
	type seg struct{ name, params string }
	var segs []seg
	var nb, pb strings.Builder
	raw := path[1:]
	trailing := false
	for {
		var part string
		i := strings.IndexByte(raw, '/')
		last := i < 0
		if last {
			part = raw
		} else {
			part, raw = raw[:i], raw[i+1:]
		}
		rawName, rawParams, _ := strings.Cut(part, ";")
		nb.Reset()
		if err := normalizeSegment(rawName, &nb); err != nil {
			return "", "", err
		}
		name := nb.String()
		params := ""
		if strings.Contains(part, ";") {
			pb.Reset()
			if err := normalizeSegment(rawParams, &pb); err != nil {
				return "", "", err
			}
			params = ";" + pb.String()
		}
		switch name {
		case ".", "":
			trailing = last
		case "..":
			if len(segs) == 0 {
				return "", "", badTarget("the path climbs above /")
			}
			segs = segs[:len(segs)-1]
			trailing = last
		default:
			segs = append(segs, seg{name, params})
			trailing = false
		}
		if last {
			break
		}
	}
	var m, f strings.Builder
	for _, s := range segs {
		m.WriteByte('/')
		m.WriteString(s.name)
		f.WriteByte('/')
		f.WriteString(s.name)
		f.WriteString(s.params)
	}
	if len(segs) == 0 || trailing {
		m.WriteByte('/')
		f.WriteByte('/')
	}
	match, forward = m.String(), f.String()
	if hasDoubleEncoding(forward) {
		return "", "", badTarget("double-encoded dot, slash or backslash")
	}
	return match, forward, nil
}

// hasDoubleEncoding finds "%25" followed by the escape of ".", "/" or "\"
// ("%252e", "%252F", "%255c"): a server that decodes twice would read a
// dot segment or a separator the rules never saw.
func hasDoubleEncoding(s string) bool {
	for i := strings.Index(s, "%25"); i >= 0; {
		rest := s[i+3:]
		if len(rest) >= 2 {
			pair := strings.ToLower(rest[:2])
			if pair == "2e" || pair == "2f" || pair == "5c" {
				return true
			}
		}
		j := strings.Index(rest, "%25")
		if j < 0 {
			return false
		}
		i += 3 + j
	}
	return false
}
