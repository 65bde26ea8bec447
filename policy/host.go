package policy

import (
	"net/netip"
	"strings"
)

// CanonicalHost lower-cases a Host header value and strips its port and
// one trailing dot: "Wiki.Example.com.:8443" is "wiki.example.com", and
// "[::1]:8443" is "::1". It returns "" for anything that is not a host
// name (letters, digits, "-" and ".") or an IP address.
func CanonicalHost(host string) string {
	h, upper := splitHost(host)
	if upper {
		h = strings.ToLower(h)
	}
	return h
}

// splitHost is CanonicalHost without the lower-casing, which it reports
// as needed, so Lookup can do it without allocating.
func splitHost(host string) (h string, upper bool) {
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return "", false
		}
		if rest := host[end+1:]; rest != "" && !validPort(rest) {
			return "", false
		}
		a, err := netip.ParseAddr(host[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", false
		}
		return a.String(), false
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		if !validPort(host[i:]) {
			return "", false
		}
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	if host == "" || len(host) > 253 || host[0] == '.' || host[len(host)-1] == '.' || strings.Contains(host, "..") {
		return "", false
	}
	for i := 0; i < len(host); i++ {
		switch c := host[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '.':
		case 'A' <= c && c <= 'Z':
			upper = true
		default:
			return "", false
		}
	}
	return host, upper
}

// validPort is ":" followed by up to 5 digits (RFC 3986 allows an empty
// port: "example.com:" is example.com).
func validPort(p string) bool {
	if len(p) < 1 || len(p) > 6 || p[0] != ':' {
		return false
	}
	for i := 1; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

// Lookup returns the index of the app serving a raw Host value: exact
// names first, then "*.domain" with exactly one label in front. It does
// not allocate for a host name, whatever its case.
func (p *Policy) Lookup(host string) (app int, ok bool) {
	h, upper := splitHost(host)
	if h == "" {
		return -1, false
	}
	if !upper {
		return p.lookup(h)
	}
	var buf [253]byte
	b := buf[:len(h)]
	for i := 0; i < len(h); i++ {
		c := h[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	if i, ok := p.exact[string(b)]; ok { // no allocation: the compiler reads b in place
		return i, true
	}
	if dot := strings.IndexByte(h, '.'); dot > 0 {
		if i, ok := p.wild[string(b[dot+1:])]; ok {
			return i, true
		}
	}
	return -1, false
}

// lookup finds the app for a canonical host.
func (p *Policy) lookup(h string) (int, bool) {
	if i, ok := p.exact[h]; ok {
		return i, true
	}
	if dot := strings.IndexByte(h, '.'); dot > 0 {
		if i, ok := p.wild[h[dot+1:]]; ok {
			return i, true
		}
	}
	return -1, false
}
