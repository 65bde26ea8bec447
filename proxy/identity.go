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
	if len(values) == 0 {
		return
	}
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
	var kept []string
	for _, v := range values {
		var parts []string
		for _, part := range strings.Split(v, ";") {
			name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			if isOneOf(name, names) {
				continue
			}
			if t := strings.TrimSpace(part); t != "" {
				parts = append(parts, t)
			}
		}
		if len(parts) > 0 {
			kept = append(kept, strings.Join(parts, "; "))
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
	if peer != "" {
		out["X-Forwarded-For"] = []string{xff}
	}
	out["X-Forwarded-Proto"] = []string{proto}
	out["X-Forwarded-Host"] = []string{host}
	if info.client.IsValid() {
		out["X-Real-Ip"] = []string{info.client.String()}
	}
}

// setIdentity sets the identity headers of a signed-in user.
func setIdentity(h http.Header, names Headers, u *store.User) {
	set := func(name, value string) {
		if name != "" {
			h[name] = []string{headerValue(value)}
		}
	}
	set(names.User, u.Username)
	set(names.Email, u.Email)
	set(names.Groups, strings.Join(u.Roles, ","))
	set(names.Name, u.DisplayName)
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
