//go:build !race

// The race detector allocates on its own account, so these run in the
// plain pass of scripts/test.sh.

package policy

import (
	"net/netip"
	"testing"
)

func TestDecideDoesNotAllocate(t *testing.T) {
	p := benchPolicy(t, 10, 100)
	ci := mustCompile(t, []App{{Host: "iis.example.com", CaseInsensitivePaths: true, Rules: []Rule{
		{Path: "/Admin/**", Roles: []string{"admin"}},
		{PathRegex: "/api/v[0-9]+/.*", Allow: AllowPublic},
		{Path: "/**", Allow: AllowAuthenticated},
	}}})
	ip := netip.MustParseAddr("10.1.2.3")
	tests := []struct {
		p   *Policy
		req *Request
	}{
		{p, &Request{Host: "app3.example.com", Method: "GET", Path: "/section7/page/7", ClientIP: ip, User: alice}},
		{p, &Request{Host: "App3.Example.com:8443", Method: "post", Path: "/section3/x/y", ClientIP: ip}},
		{p, &Request{Host: "app3.example.com", Method: "GET", Path: "/re90/42", ClientIP: ip, User: bob}},
		{p, &Request{Host: "app3.example.com", Method: "GET", Path: "/nothing/here/", ClientIP: netip.MustParseAddr("::ffff:10.1.2.3")}},
		{p, &Request{Host: "nowhere.example.com", Method: "GET", Path: "/"}},
		{ci, &Request{Host: "iis.example.com", Method: "GET", Path: "/admin/users", User: alice}},
		{ci, &Request{Host: "iis.example.com", Method: "GET", Path: "/api/v2/items"}},
	}
	for _, tc := range tests {
		if allocs := testing.AllocsPerRun(100, func() { tc.p.Decide(tc.req) }); allocs != 0 {
			t.Errorf("Decide(%+v) made %v allocations, want 0", tc.req, allocs)
		}
	}
}

func TestParseTargetDoesNotAllocateForCanonicalPaths(t *testing.T) {
	for _, target := range []string{
		"/",
		"/api/v1/users/42?expand=roles",
		"/static/app.css",
		"/a/b/",
		"/files/My%20Doc.pdf",
		"/caf%C3%A9",
		"/app;jsessionid=1",
		"http://app.example.com/a/b?x=1",
	} {
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := ParseTarget(target); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("ParseTarget(%q): %v allocations, want 0", target, allocs)
		}
	}
}
