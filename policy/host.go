package policy

import (
	"net/netip"
	"strings"
)

// CanonicalHost lower-cases a Host header value and strips its port and
// one trailing dot: "Wiki.Example.com.:8443" is "wiki.example.com", and
// "[::1]:8443" is "::1". It returns "" for anything that is not a host
// name or IP address.
func CanonicalHost(host string) string {
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return ""
		}
		rest := host[end+1:]
		if rest != "" && !validPort(rest) {
			return ""
		}
		a, err := netip.ParseAddr(host[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return ""
		}
		return a.String()
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		if !validPort(host[i:]) {
			return ""
		}
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	if host == "" || len(host) > 253 {
		return ""
	}
	lower := true
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '.':
		case 'A' <= c && c <= 'Z':
			lower = false
		default:
			return ""
		}
	}
	if strings.Contains(host, "..") || host[0] == '.' || host[len(host)-1] == '.' {
		return ""
	}
	if !lower {
		host = strings.ToLower(host)
	}
	return host
}

// validPort is ":" followed by 1-5 digits.
func validPort(p string) bool {
	if len(p) < 2 || len(p) > 6 || p[0] != ':' {
		return false
	}
	for i := 1; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}
