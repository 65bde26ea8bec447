package proxy

import (
	"net/http"
	"net/http/httputil"
	"strings"

	"github.com/gatehouse-auth/gatehouse/store"
)

// forwardingHeaders are dropped from clients outside trusted_proxies: an app
// that believes them would take a client's word for its address, scheme,
// host or even which URL it asked for (X-Original-URL is how IIS and
// Symfony apps get their routing overridden).
var forwardingHeaders = []string{
	"forwarded", "x-real-ip", "x-original-url", "x-original-uri", "x-rewrite-url",
	"x-client-ip", "true-client-ip", "x-cluster-client-ip", "cf-connecting-ip", "x-host",
}

// methodOverrideHeaders are always dropped: Rails, Express and Symfony apps
// honour them, so a GET allowed by a `methods: [GET]` rule could become a
// DELETE inside the app.
var methodOverrideHeaders = []string{"x-http-method-override", "x-http-method", "x-method-override"}

// normalizeHeaderName folds a header name for comparison: lower case, with
// "_" counted as "-" (CGI-style servers such as PHP and WSGI merge the two).
func normalizeHeaderName(name string) string {
	return strings.ToLower(strings.ReplaceAll(name, "_", "-"))
}

// headerIs reports whether name, folded like normalizeHeaderName, equals
// want (already folded), without allocating.
func headerIs(name, want string) bool {
	if len(name) != len(want) {
		return false
	}
	for i := 0; i < len(name); i++ {
		if foldHeaderByte(name[i]) != want[i] {
			return false
		}
	}
	return true
}

// headerHasPrefix is headerIs for a prefix.
func headerHasPrefix(name, prefix string) bool {
	return len(name) >= len(prefix) && headerIs(name[:len(prefix)], prefix)
}

func foldHeaderByte(c byte) byte {
	switch {
	case c == '_':
		return '-'
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	}
	return c
}

// scrubHeaders removes every client-supplied spelling of an identity
// header, method overrides, and, unless the peer is a trusted proxy, every
// forwarding and routing-override header.
func scrubHeaders(h http.Header, identity []string, trusted bool) {
	for name := range h {
		if dropHeader(name, identity, trusted) {
			delete(h, name)
		}
	}
}

func dropHeader(name string, identity []string, trusted bool) bool {
	for _, id := range identity {
		if headerIs(name, id) {
			return true
		}
	}
	for _, m := range methodOverrideHeaders {
		if headerIs(name, m) {
			return true
		}
	}
	if trusted {
		return false
	}
	if headerHasPrefix(name, "x-forwarded-") || headerIs(name, "x-forwarded") {
		return true
	}
	for _, f := range forwardingHeaders {
		if headerIs(name, f) {
			return true
		}
	}
	return false
}

// stripCookies removes the gateway's own cookies from the Cookie header so
// an app can never read (or log, or leak) the caller's gateway session;
// the app's cookies pass unchanged and in order.
func stripCookies(h http.Header, names []string) {
	values := h["Cookie"]
	found := false
	for _, v := range values {
		for _, n := range names {
			if strings.Contains(v, n) {
				found = true
			}
		}
	}
	if !found {
		return
	}
	kept := values[:0]
	for _, v := range values {
		var b strings.Builder
		for v != "" {
			var part string
			part, v, _ = strings.Cut(v, ";")
			part = strings.TrimSpace(part)
			name, _, _ := strings.Cut(part, "=")
			if part == "" || isOneOf(name, names) {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(part)
		}
		if b.Len() > 0 {
			kept = append(kept, b.String())
		}
	}
	if len(kept) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = kept
}

func isOneOf(s string, list []string) bool {
	for _, l := range list {
		if s == l {
			return true
		}
	}
	return false
}

// setForwarded sets X-Forwarded-For/-Proto/-Host and X-Real-IP. Values a
// client sent are kept only when its peer is a trusted proxy.
func setForwarded(pr *httputil.ProxyRequest, info *reqInfo, scheme string) {
	in, out := pr.In.Header, pr.Out.Header
	peer := peerAddr(pr.In)
	xff := peer
	proto, host := scheme, pr.In.Host
	if info.trusted {
		if prior := in.Values("X-Forwarded-For"); len(prior) > 0 {
			xff = strings.Join(prior, ", ") + ", " + peer
		}
		if p := in.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
			proto = p
		}
		if h := in.Get("X-Forwarded-Host"); h != "" {
			host = h
		}
	}
	// One backing array for all four values: one allocation, not four.
	vals := [4]string{xff, proto, host, info.client.String()}
	all := vals[:]
	if peer != "" {
		out["X-Forwarded-For"] = all[0:1:1]
	}
	out["X-Forwarded-Proto"] = all[1:2:2]
	out["X-Forwarded-Host"] = all[2:3:3]
	if info.client.IsValid() {
		out["X-Real-Ip"] = all[3:4:4]
	}
}

// setIdentity sets the identity headers of a signed-in user.
// The email is sent only once its owner confirmed it (or an admin entered
// it): a self-registered address nobody confirmed must not reach an app
// that trusts Remote-Email.
func setIdentity(h http.Header, names Headers, u *store.User) {
	email := ""
	if u.EmailVerified {
		email = u.Email
	}
	vals := [4]string{headerValue(u.Username), headerValue(email), headerValue(strings.Join(u.Roles, ",")), headerValue(u.DisplayName)}
	all := vals[:]
	for i, name := range [4]string{names.User, names.Email, names.Groups, names.Name} {
		if name != "" && (i != 1 || email != "") {
			h[name] = all[i : i+1 : i+1]
		}
	}
}

// headerValue drops control characters, which would otherwise make the
// upstream request invalid (or split it).
func headerValue(v string) string {
	clean := true
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return v
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, v)
}
