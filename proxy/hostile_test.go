package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-auth/gatehouse/policy"
)

// TestHostileRequests sends what an attacker would send, anonymously, to
// an app whose only public part is /public/**. Each gets its expected
// answer, and nothing reaches the app outside /public/.
func TestHostileRequests(t *testing.T) {
	up := newUpstream(t, nil)
	_, gw := newGateway(t, up, gatewayOpts{})
	const pub, login, forbidden, bad, noHost = 200, 401, 403, 400, 421
	tests := []struct {
		name   string
		req    string
		status int
	}{
		// Dot segments, raw and encoded, any case, with params.
		{"dot-dot raw", get("/public/../admin/x", "app.test"), login},
		{"dot-dot encoded", get("/public/%2e%2e/admin/x", "app.test"), login},
		{"dot-dot upper", get("/public/%2E%2E/admin/x", "app.test"), login},
		{"dot-dot mixed", get("/public/.%2E/admin/x", "app.test"), login},
		{"dot-dot tomcat", get("/public/..;/admin/x", "app.test"), login},
		{"dot-dot tomcat params", get("/public/..;jsessionid=x/admin/x", "app.test"), login},
		{"dot with params", get("/public/.;/x", "app.test"), pub},
		{"dot-dot double-encoded", get("/public/%252e%252e/admin/x", "app.test"), bad},
		{"dot-dot double mixed", get("/public/%252E%252e/admin/x", "app.test"), bad},
		{"dot-dot overlong utf-8", get("/public/%c0%ae%c0%ae/admin/x", "app.test"), bad},
		{"dot-dot overlong 3-byte", get("/public/%e0%80%ae%e0%80%ae/admin", "app.test"), bad},
		{"climb above root", get("/../admin/x", "app.test"), bad},
		{"climb above root encoded", get("/%2e%2e/admin/x", "app.test"), bad},
		{"climb deep", get("/public/../../admin", "app.test"), bad},
		{"trailing dot-dot", get("/public/x/..", "app.test"), pub},
		// Slashes and backslashes.
		{"encoded slash", get("/public%2f..%2fadmin/x", "app.test"), bad},
		{"encoded slash upper", get("/public%2F..%2Fadmin", "app.test"), bad},
		{"double-encoded slash", get("/public%252f..%252fadmin", "app.test"), bad},
		{"raw backslash", get("/public\\..\\admin", "app.test"), bad},
		{"encoded backslash", get("/public%5c..%5cadmin", "app.test"), bad},
		{"double-encoded backslash", get("/public%255c..%255cadmin", "app.test"), bad},
		{"duplicate slashes", get("//admin//x", "app.test"), login},
		{"duplicate slash into public", get("/public//../admin", "app.test"), login},
		{"leading double slash public", get("//public/x", "app.test"), pub},
		// NUL and control bytes.
		{"encoded NUL", get("/public/x%00/../../admin", "app.test"), bad},
		{"encoded NUL suffix", get("/admin%00.css", "app.test"), bad},
		{"encoded newline", get("/public/x%0a", "app.test"), bad},
		{"encoded CR", get("/public/x%0d", "app.test"), bad},
		{"encoded tab", get("/public/x%09", "app.test"), bad},
		{"encoded DEL", get("/public/x%7f", "app.test"), bad},
		// Fragments.
		{"encoded hash", get("/admin%23/public/x", "app.test"), bad},
		{"raw hash", get("/admin#/public/x", "app.test"), bad},
		// Params.
		{"params on public", get("/public;x=1/a", "app.test"), pub},
		{"params on admin", get("/admin;public/x", "app.test"), login},
		{"encoded semicolon", get("/public%3b/../admin", "app.test"), login},
		{"only params segment", get("/;/admin", "app.test"), login},
		// Encodings of letters and invalid escapes.
		{"encoded letters", get("/%61dmin/x", "app.test"), login},
		{"encoded public", get("/%70ublic/x", "app.test"), pub},
		{"invalid escape", get("/public/%zz", "app.test"), bad},
		{"truncated escape", get("/public/%4", "app.test"), bad},
		{"lone percent", get("/public/%", "app.test"), bad},
		{"invalid utf-8", get("/public/%ff", "app.test"), bad},
		{"raw invalid utf-8", get("/public/\xff", "app.test"), bad},
		{"raw utf-8", get("/public/caf\xc3\xa9", "app.test"), pub},
		// Queries that mention protected paths or the reserved prefix.
		{"query mentions admin", get("/public/x?next=/admin/x", "app.test"), pub},
		{"query mentions prefix", get("/admin/x?/.gatehouse/login", "app.test"), login},
		{"query with dot-dot", get("/public/x?../../admin", "app.test"), pub},
		{"reserved prefix later segment", get("/admin/.gatehouse/login", "app.test"), login},
		// Absolute-form targets.
		{"absolute form", get("http://app.test/public/x", "app.test"), pub},
		{"absolute form wins over Host (RFC 9112 3.2.2)", get("http://app.test/admin", "evil.test"), login},
		{"absolute form unknown host", get("http://evil.test/public/x", "app.test"), noHost},
		{"absolute form dot-dot", get("http://app.test/public/../admin", "app.test"), login},
		{"asterisk", get("*", "app.test"), bad},
		// Host variants.
		{"host upper case", get("/public/x", "APP.TEST"), pub},
		{"host port", get("/public/x", "app.test:8443"), pub},
		{"host trailing dot", get("/public/x", "app.test."), pub},
		{"host unknown", get("/public/x", "evil.test"), noHost},
		{"host suffix trick", get("/public/x", "app.test.evil.test"), noHost},
		{"host with path", get("/public/x", "app.test/x"), http.StatusBadRequest},
		{"host empty", "GET /public/x HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n", noHost},
		// Methods.
		{"lower-case method", "get /admin/x HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n", login},
		{"unusual method", "PROPFIND /admin/x HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n", login},
		{"method override", get("/public/x", "app.test", "X-HTTP-Method-Override: DELETE"), pub},
		// Routing-override and identity headers.
		{"X-Original-URL", get("/public/x", "app.test", "X-Original-URL: /admin/x"), pub},
		{"X-Rewrite-URL", get("/public/x", "app.test", "X-Rewrite-URL: /admin/x"), pub},
		{"spoofed user", get("/admin/x", "app.test", "Remote-User: admin", "Remote-Groups: admin"), login},
		{"spoofed user underscore", get("/admin/x", "app.test", "Remote_User: admin"), login},
		{"forwarded for", get("/admin/x", "app.test", "X-Forwarded-For: 127.0.0.1"), login},
	}
	if len(tests) < 60 {
		t.Fatalf("only %d hostile cases", len(tests))
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(up.requests())
			resp, body := raw(t, addr(gw), tc.req)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d (%q)", resp.StatusCode, tc.status, body)
			}
			for _, r := range up.requests()[before:] {
				got, err := policy.ParseTarget(r.RequestURI)
				if err != nil || !strings.HasPrefix(got.Path, "/public/") {
					t.Errorf("the app received %q", r.RequestURI)
				}
				for name := range r.Header {
					n := normalizeHeaderName(name)
					if strings.HasPrefix(n, "remote-") || n == "x-original-url" || n == "x-rewrite-url" || n == "x-http-method-override" {
						t.Errorf("the app received %s", name)
					}
				}
			}
		})
	}
}
