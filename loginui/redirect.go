package loginui

import (
	"net/url"
	"strings"
)

// SafeRedirect returns rd when it is safe to send a user there after
// sign-in, and "/" otherwise. Safe is a local path (one leading "/" and no
// "//" anywhere, not even percent-encoded in its path) or an https URL whose
// host is an app host; in both, no whitespace, control character,
// backslash or non-ASCII byte anywhere, since browsers repair such URLs in
// ways that lead off-site (SPEC §5).
func SafeRedirect(rd string, isAppHost func(host string) bool) string {
	if rd == "" || len(rd) > 4096 {
		return "/"
	}
	for i := 0; i < len(rd); i++ {
		if c := rd[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return "/"
		}
	}
	if rd[0] == '/' {
		// No "//" anywhere: not as a scheme-relative start, and not in a
		// path or query that a lenient app would re-read as a URL.
		if strings.Contains(rd, "//") {
			return "/"
		}
		// It must parse, and its path, decoded once, must pass too: an
		// app that decodes "/%2F%2Fevil.example" or "/%5Cevil.example"
		// again must not find a way off-site.
		u, err := url.Parse(rd)
		if err != nil || u.Scheme != "" || u.Host != "" ||
			strings.Contains(u.Path, "//") || strings.ContainsFunc(u.Path, unsafeRune) {
			return "/"
		}
		return rd
	}
	if len(rd) < 8 || !strings.EqualFold(rd[:8], "https://") {
		return "/"
	}
	u, err := url.Parse(rd)
	if err != nil || u.User != nil || u.Opaque != "" || u.Host == "" || strings.ContainsAny(u.Host, "@%") {
		return "/"
	}
	host := strings.ToLower(u.Hostname())
	if host == "" || isAppHost == nil || !isAppHost(host) {
		return "/"
	}
	return rd
}

// unsafeRune is a character no local redirect target may hold, even
// percent-encoded: a control byte, or a backslash (browsers read it as "/").
func unsafeRune(r rune) bool { return r < ' ' || r == 0x7f || r == '\\' }
