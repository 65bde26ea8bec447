package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func src(n int) Source { return Source{File: "test.yaml", Line: n} }

func mustCompile(t testing.TB, apps []App) *Policy {
	t.Helper()
	p, err := Compile(apps)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	alice = &Identity{Name: "alice", Roles: []string{"admin"}}
	bob   = &Identity{Name: "bob", Roles: []string{"reader"}}
	carol = &Identity{Name: "carol"}
)

// decideCase is one request and the decision a user of the gateway sees:
// the action, the line of the rule that decided (0: none) and the app.
type decideCase struct {
	name   string
	req    Request
	action Action
	line   int
	app    int
}

func runDecideCases(t *testing.T, p *Policy, tests []decideCase) {
	t.Helper()
	o := newOracle(t, p)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Decide(&tc.req)
			line := 0
			if d.Rule != nil {
				line = d.Rule.Source.Line
			}
			if d.Action != tc.action || line != tc.line || d.App != tc.app {
				t.Errorf("Decide = %v by line %d app %d; want %v by line %d app %d", d.Action, line, d.App, tc.action, tc.line, tc.app)
			}
			if want := o.decide(&tc.req); d != want {
				t.Errorf("Decide = %v; oracle %v", describeDecision(p, d), describeDecision(p, want))
			}
			e, steps := p.Explain(&tc.req)
			if e != d {
				t.Errorf("Explain decided %+v, Decide %+v", e, d)
			}
			if d.Rule != nil && (len(steps) == 0 || !steps[len(steps)-1].Matched || steps[len(steps)-1].Rule != d.Rule) {
				t.Errorf("Explain steps do not end at the deciding rule: %+v", steps)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	p := mustCompile(t, []App{
		{Host: "wiki.example.com", Source: src(1), Rules: []Rule{
			{Path: "/static/**", Allow: AllowPublic, Source: src(2)},
			{Path: "/admin/**", Roles: []string{"admin"}, Source: src(3)},
			{Path: "/api/**", Methods: []string{"get", "HEAD"}, Roles: []string{"reader", "admin"}, Source: src(4)},
			{Path: "/api/**", Deny: true, Source: src(5)},
			{Path: "/intranet/**", Networks: []string{"10.0.0.0/8", "192.168.1.7", "2001:db8::/32"}, Allow: AllowPublic, Source: src(6)},
			{Path: "/intranet/**", Allow: AllowAuthenticated, Source: src(7)},
			{Path: "/files/*.pdf", Users: []string{"Bob"}, Source: src(8)},
			{Path: "/one/*", Allow: AllowPublic, Source: src(9)},
			{PathRegex: `/reports/[0-9]{4}`, Roles: []string{"reader"}, Source: src(10)},
			{Path: "/secret", Deny: true, Source: src(11)},
			{Path: "/", Allow: AllowPublic, Source: src(12)},
			{Path: "/team/**", Roles: []string{"staff"}, Users: []string{"carol"}, Source: src(14)},
			{Path: "/lan-only/**", Networks: []string{"fe80::/10"}, Deny: true, Source: src(15)},
			{Path: "/**", Allow: AllowAuthenticated, Source: src(13)},
		}},
		{Host: "*.apps.example.com", Source: src(20), Rules: []Rule{{Path: "/**", Roles: []string{"dev"}, Source: src(21)}}},
		{Host: "legacy.example.com", CaseInsensitivePaths: true, Source: src(30), Rules: []Rule{
			{Path: "/Admin/**", Deny: true, Source: src(31)},
			{PathRegex: `/api/v[0-9]+/.*`, Allow: AllowPublic, Source: src(32)},
			{Path: "/Caf%C3%A9", Deny: true, Source: src(34)},
			{Path: "/**", Allow: AllowPublic, Source: src(33)},
		}},
		{Host: "empty.example.com", Source: src(40)},
		{Host: "x.apps.example.com", Source: src(50), Rules: []Rule{{Path: "/**", Allow: AllowPublic, Source: src(51)}}},
	})
	ip := netip.MustParseAddr
	wiki := func(method, path string, u *Identity) Request {
		return Request{Host: "wiki.example.com", Method: method, Path: path, User: u}
	}
	withIP := func(r Request, a string) Request { r.ClientIP = ip(a); return r }
	runDecideCases(t, p, []decideCase{
		{"public asset anonymous", wiki("GET", "/static/app.css", nil), Allow, 2, 0},
		{"prefix is the directory itself", wiki("GET", "/static", nil), Allow, 2, 0},
		{"prefix with trailing slash", wiki("GET", "/static/", nil), Allow, 2, 0},
		{"segment boundary: /static/** is not /static-evil", wiki("GET", "/static-evil/x", nil), Login, 13, 0},
		{"segment boundary: /static/** is not /staticx", wiki("GET", "/staticx", nil), Login, 13, 0},
		{"admin anonymous needs sign-in", wiki("GET", "/admin/users", nil), Login, 3, 0},
		{"admin as admin", wiki("GET", "/admin/users", alice), Allow, 3, 0},
		{"admin as reader", wiki("GET", "/admin", bob), Deny, 3, 0},
		{"admin trailing slash", wiki("GET", "/admin/", bob), Deny, 3, 0},
		{"admin deep", wiki("GET", "/admin/a/b/c/d", bob), Deny, 3, 0},
		{"api read, lower-case method", wiki("get", "/api/x", bob), Allow, 4, 0},
		{"api read, mixed-case method", wiki("hEaD", "/api/x", bob), Allow, 4, 0},
		{"api write falls to the deny", wiki("POST", "/api/x", alice), Deny, 5, 0},
		{"api odd method", wiki("PROPFIND", "/api/x", alice), Deny, 5, 0},
		{"api query string is not part of the path", wiki("GET", "/api", bob), Allow, 4, 0},
		{"intranet inside a CIDR", withIP(wiki("GET", "/intranet/x", nil), "10.1.2.3"), Allow, 6, 0},
		{"intranet single address", withIP(wiki("GET", "/intranet/x", nil), "192.168.1.7"), Allow, 6, 0},
		{"intranet neighbour of the single address", withIP(wiki("GET", "/intranet/x", nil), "192.168.1.8"), Login, 7, 0},
		{"intranet v4-mapped v6 client", withIP(wiki("GET", "/intranet/x", nil), "::ffff:10.1.2.3"), Allow, 6, 0},
		{"intranet v6 client", withIP(wiki("GET", "/intranet/x", nil), "2001:db8:1::9"), Allow, 6, 0},
		{"intranet outside", withIP(wiki("GET", "/intranet/x", nil), "203.0.113.9"), Login, 7, 0},
		{"intranet unknown address never matches networks", wiki("GET", "/intranet/x", nil), Login, 7, 0},
		{"deny with networks holds for a zoned address", withIP(wiki("GET", "/lan-only/x", alice), "fe80::1%eth0"), Deny, 15, 0},
		{"deny with networks does not hold outside", withIP(wiki("GET", "/lan-only/x", alice), "2001:db8::1"), Allow, 13, 0},
		{"users rule, name compared lower-case", wiki("GET", "/files/report.pdf", bob), Allow, 8, 0},
		{"users rule, other user", wiki("GET", "/files/report.pdf", carol), Deny, 8, 0},
		{"users rule, anonymous", wiki("GET", "/files/report.pdf", nil), Login, 8, 0},
		{"in-segment wildcard stays in its segment", wiki("GET", "/files/a/report.pdf", carol), Allow, 13, 0},
		{"in-segment wildcard is anchored", wiki("GET", "/files/report.pdf.exe", carol), Allow, 13, 0},
		{"roles or users: user listed", wiki("GET", "/team/x", carol), Allow, 14, 0},
		{"roles or users: role held", wiki("GET", "/team/x", &Identity{Name: "dan", Roles: []string{"staff"}}), Allow, 14, 0},
		{"roles or users: neither", wiki("GET", "/team/x", bob), Deny, 14, 0},
		{"one segment", wiki("GET", "/one/x", nil), Allow, 9, 0},
		{"one segment, trailing slash", wiki("GET", "/one/x/", nil), Allow, 9, 0},
		{"one segment, not two", wiki("GET", "/one/x/y", nil), Login, 13, 0},
		{"one segment, not zero", wiki("GET", "/one/", nil), Login, 13, 0},
		{"one segment, not the parent", wiki("GET", "/one", nil), Login, 13, 0},
		{"regex", wiki("GET", "/reports/2024", bob), Allow, 10, 0},
		{"regex is anchored at the end", wiki("GET", "/reports/2024/x", carol), Allow, 13, 0},
		{"regex is anchored at the start", wiki("GET", "/x/reports/2024", carol), Allow, 13, 0},
		{"exact deny", wiki("GET", "/secret", alice), Deny, 11, 0},
		{"exact deny, trailing slash cannot step around it", wiki("GET", "/secret/", alice), Deny, 11, 0},
		{"exact is not a prefix", wiki("GET", "/secret/x", alice), Allow, 13, 0},
		{"root", wiki("GET", "/", nil), Allow, 12, 0},
		{"host case, port and trailing dot", Request{Host: "WIKI.example.com.:8443", Method: "GET", Path: "/"}, Allow, 12, 0},
		{"host with an empty port", Request{Host: "wiki.example.com:", Method: "GET", Path: "/"}, Allow, 12, 0},
		{"wildcard host", Request{Host: "y.apps.example.com", Method: "GET", Path: "/", User: alice}, Deny, 21, 1},
		{"exact host before wildcard", Request{Host: "X.apps.example.com", Method: "GET", Path: "/"}, Allow, 51, 4},
		{"wildcard host, one label only", Request{Host: "a.b.apps.example.com", Method: "GET", Path: "/"}, Deny, 0, -1},
		{"wildcard host, not the apex", Request{Host: "apps.example.com", Method: "GET", Path: "/"}, Deny, 0, -1},
		{"wildcard host, not an empty label", Request{Host: ".apps.example.com", Method: "GET", Path: "/"}, Deny, 0, -1},
		{"unknown host", Request{Host: "evil.example", Method: "GET", Path: "/"}, Deny, 0, -1},
		{"invalid host", Request{Host: "wiki.example.com/x", Method: "GET", Path: "/"}, Deny, 0, -1},
		{"case-insensitive deny", Request{Host: "legacy.example.com", Method: "GET", Path: "/ADMIN/x"}, Deny, 31, 2},
		{"case-insensitive deny, the directory", Request{Host: "legacy.example.com", Method: "GET", Path: "/aDmIn"}, Deny, 31, 2},
		{"case-insensitive regex", Request{Host: "legacy.example.com", Method: "GET", Path: "/API/V2/x"}, Allow, 32, 2},
		{"case-insensitive escapes", Request{Host: "legacy.example.com", Method: "GET", Path: "/CAF%C3%A9"}, Deny, 34, 2},
		{"case-sensitive app", wiki("GET", "/ADMIN/x", bob), Allow, 13, 0},
		{"app without rules denies", Request{Host: "empty.example.com", Method: "GET", Path: "/", User: alice}, Deny, 0, 3},
	})
}

func TestGlobs(t *testing.T) {
	tests := []struct {
		pattern string
		ci      bool
		match   []string
		miss    []string
	}{
		{"/", false, []string{"/"}, []string{"/a", "/a/"}},
		{"/a/b", false, []string{"/a/b", "/a/b/"}, []string{"/a", "/a/b/c", "/a/bc", "/a/b.", "/A/b"}},
		{"/a/b/", false, []string{"/a/b", "/a/b/"}, []string{"/a/b/c"}},
		{"/a/*", false, []string{"/a/x", "/a/x/", "/a/*"}, []string{"/a", "/a/", "/a/x/y"}},
		{"/*/b", false, []string{"/x/b", "/a/b/"}, []string{"/b", "/x/y/b"}},
		{"/static/*.css", false, []string{"/static/app.css", "/static/.css", "/static/a.b.css"}, []string{"/static/css/app.css", "/static/app.css.map", "/static/app.CSS"}},
		{"/v*", false, []string{"/v", "/v2", "/v2/"}, []string{"/x/v2", "/v2/x"}},
		{"/a*b*c", false, []string{"/abc", "/aXbYc", "/abbc", "/abcbc"}, []string{"/ab", "/acb", "/abcd"}},
		{"/a/**", false, []string{"/a", "/a/", "/a/x", "/a/x/y/z/"}, []string{"/ab", "/a-evil", "/", "/b/a"}},
		{"/**", false, []string{"/", "/a", "/a/b/c"}, nil},
		{"/*/**", false, []string{"/a", "/a/b/c"}, []string{"/"}},
		{"/a/*/**", false, []string{"/a/x", "/a/x/y"}, []string{"/a", "/a/"}},
		{"/café", false, []string{"/caf%C3%A9"}, []string{"/cafe", "/caf%C3%A9x"}},
		{"/caf%c3%a9", false, []string{"/caf%C3%A9"}, nil},
		{"/%61dmin", false, []string{"/admin"}, nil},
		{"/a%20b", false, []string{"/a%20b"}, []string{"/a%2520b", "/a+b"}},
		{"/Admin/**", true, []string{"/admin", "/ADMIN/X", "/aDmIn/"}, []string{"/admin-x"}},
		{"/*.ASPX", true, []string{"/default.aspx", "/X.AsPx"}, []string{"/default.asp"}},
	}
	for _, tc := range tests {
		t.Run(tc.pattern, func(t *testing.T) {
			p := mustCompile(t, []App{{Host: "a.test", CaseInsensitivePaths: tc.ci, Rules: []Rule{{Path: tc.pattern, Allow: AllowPublic, Source: src(1)}}}})
			for _, path := range tc.match {
				tg, err := ParseTarget(path)
				if err != nil {
					t.Fatal(err)
				}
				if d := p.Decide(&Request{Host: "a.test", Method: "GET", Path: tg.Path}); d.Action != Allow {
					t.Errorf("%q on %q = %v, want a match", tc.pattern, path, d.Action)
				}
			}
			for _, path := range tc.miss {
				tg, err := ParseTarget(path)
				if err != nil {
					t.Fatal(err)
				}
				if d := p.Decide(&Request{Host: "a.test", Method: "GET", Path: tg.Path}); d.Action != Deny || d.Rule != nil {
					t.Errorf("%q on %q = %v by %v, want no match", tc.pattern, path, d.Action, d.Rule)
				}
			}
		})
	}
}

func TestFirstMatchWins(t *testing.T) {
	// The same paths as rules in both orders: the earlier rule always decides.
	rules := []Rule{
		{Path: "/a/**", Deny: true, Source: src(1)},
		{Path: "/a/b", Allow: AllowPublic, Source: src(2)},
		{Path: "/a/*", Allow: AllowAuthenticated, Source: src(3)},
		{PathRegex: "/a/.*", Roles: []string{"x"}, Source: src(4)},
	}
	for _, order := range [][]int{{0, 1, 2, 3}, {1, 0, 2, 3}, {2, 1, 0, 3}, {3, 2, 1, 0}, {3, 0, 1, 2}} {
		var rs []Rule
		for _, i := range order {
			rs = append(rs, rules[i])
		}
		p := mustCompile(t, []App{{Host: "a.test", Rules: rs}})
		d := p.Decide(&Request{Host: "a.test", Method: "GET", Path: "/a/b"})
		if d.Rule == nil || d.Rule.Source != rs[0].Source {
			t.Errorf("order %v: decided by %v, want the first rule %v", order, d.Rule, rs[0].Source)
		}
	}
}

func TestDecideFailsClosed(t *testing.T) {
	p := mustCompile(t, []App{{Host: "a.test", Rules: []Rule{
		{Path: "/admin/**", Deny: true, Source: src(1)},
		{Path: "/**", Allow: AllowPublic, Source: src(2)},
	}}})
	if d := p.Decide(nil); d.Action != Deny || d.App != -1 {
		t.Errorf("Decide(nil) = %+v, want deny", d)
	}
	// A caller that forgot ParseTarget must not get a path the app reads
	// as /admin past the deny rule.
	for _, path := range []string{"", "admin", "/public/../admin", "//admin", "/./admin", "/admin;x=y", "/admin%2fx", "/ADMIN%5C", "/a\\b",
		"/a?b", "/a#b", "/a b", "/a\x00", "/caf\xc3\xa9", "/x/..", "/x/."} {
		d := p.Decide(&Request{Host: "a.test", Method: "GET", Path: path})
		if d.Action != Deny || d.Rule != nil || d.App != 0 {
			t.Errorf("Decide(path %q) = %v by %v, want deny by no rule", path, d.Action, d.Rule)
		}
		if e, steps := p.Explain(&Request{Host: "a.test", Method: "GET", Path: path}); e != d || steps != nil {
			t.Errorf("Explain(path %q) = %+v %+v, want %+v and no steps", path, e, steps, d)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	rule := func(r Rule) App { r.Source = src(3); return App{Host: "a.test", Source: src(1), Rules: []Rule{r}} }
	tests := []struct {
		name string
		app  App
		want string
	}{
		{"no decision", rule(Rule{Path: "/"}), "test.yaml:3: a rule needs exactly one decision"},
		{"allow and deny", rule(Rule{Path: "/", Allow: AllowPublic, Deny: true}), "exactly one decision"},
		{"allow and roles", rule(Rule{Path: "/", Allow: AllowAuthenticated, Roles: []string{"a"}}), "exactly one decision"},
		{"users and deny", rule(Rule{Path: "/", Users: []string{"a"}, Deny: true}), "exactly one decision"},
		{"bad allow", rule(Rule{Path: "/", Allow: "everyone"}), `test.yaml:3: allow: "everyone" is not public or authenticated`},
		{"allow in capitals", rule(Rule{Path: "/", Allow: "Public"}), `allow: "Public" is not public or authenticated`},
		{"no path", rule(Rule{Allow: AllowPublic}), "needs path or path_regex"},
		{"both paths", rule(Rule{Path: "/", PathRegex: "/", Allow: AllowPublic}), "not both"},
		{"relative", rule(Rule{Path: "admin/**", Allow: AllowPublic}), "must start with /"},
		{"inner **", rule(Rule{Path: "/a/**/b", Allow: AllowPublic}), `"**" must be a whole segment at the end`},
		{"partial **", rule(Rule{Path: "/a**", Allow: AllowPublic}), `"**" must be a whole segment`},
		{"dot-dot segment", rule(Rule{Path: "/a/../b", Allow: AllowPublic}), `can never match a canonical path (write "/b")`},
		{"encoded dot-dot segment", rule(Rule{Path: "/a/%2E%2e/b", Allow: AllowPublic}), "can never match"},
		{"dot segment", rule(Rule{Path: "/a/./b", Allow: AllowPublic}), `can never match a canonical path (write "/a/b")`},
		{"final dot segment", rule(Rule{Path: "/a/.", Allow: AllowPublic}), "can never match"},
		{"lone dot", rule(Rule{Path: "/.", Allow: AllowPublic}), "can never match"},
		{"double slash", rule(Rule{Path: "/a//b", Allow: AllowPublic}), "can never match"},
		{"leading double slash", rule(Rule{Path: "//a", Allow: AllowPublic}), "can never match"},
		{"encoded slash", rule(Rule{Path: "/a%2fb", Allow: AllowPublic}), "encoded slash"},
		{"encoded backslash", rule(Rule{Path: "/a%5Cb", Allow: AllowPublic}), "encoded slash or backslash"},
		{"backslash", rule(Rule{Path: `/a\b`, Allow: AllowPublic}), "backslash"},
		{"query", rule(Rule{Path: "/a?x", Allow: AllowPublic}), "must not contain ?"},
		{"fragment", rule(Rule{Path: "/a#x", Allow: AllowPublic}), "must not contain ?, # or ;"},
		{"params", rule(Rule{Path: "/a;x", Allow: AllowPublic}), "must not contain ?, # or ;"},
		{"double encoding", rule(Rule{Path: "/a%252e", Allow: AllowPublic}), "double-encoded"},
		{"bad escape", rule(Rule{Path: "/a%zz", Allow: AllowPublic}), "invalid %-escape"},
		{"space", rule(Rule{Path: "/a b", Allow: AllowPublic}), "space"},
		{"bad regex", rule(Rule{PathRegex: "/a(", Allow: AllowPublic}), "path_regex: missing closing )"},
		{"bad method", rule(Rule{Path: "/", Methods: []string{"GET POST"}, Allow: AllowPublic}), `methods: "GET POST" is not an HTTP method`},
		{"empty method", rule(Rule{Path: "/", Methods: []string{""}, Allow: AllowPublic}), "is not an HTTP method"},
		{"bad network", rule(Rule{Path: "/", Networks: []string{"10.0.0.0/33"}, Allow: AllowPublic}), `networks: "10.0.0.0/33" is not a CIDR`},
		{"network name", rule(Rule{Path: "/", Networks: []string{"intranet"}, Allow: AllowPublic}), "is not a CIDR"},
		{"network with a zone", rule(Rule{Path: "/", Networks: []string{"fe80::1%eth0"}, Allow: AllowPublic}), "has a zone"},
		{"short v4-mapped network", rule(Rule{Path: "/", Networks: []string{"::ffff:0.0.0.0/64"}, Allow: AllowPublic}), "shorter than /96"},
		{"empty role", rule(Rule{Path: "/", Roles: []string{""}}), "roles: an empty role name"},
		{"blank role", rule(Rule{Path: "/", Roles: []string{"  "}}), "empty role"},
		{"padded role", rule(Rule{Path: "/", Roles: []string{"admin "}}), `roles: "admin " has spaces around it`},
		{"empty user", rule(Rule{Path: "/", Users: []string{"alice", ""}}), "users: an empty user name"},
		{"bad host", App{Host: "http://a.test", Source: src(1)}, "test.yaml:1: host"},
		{"empty host", App{Host: "", Source: src(1)}, "not a valid host name"},
		{"host with port", App{Host: "a.test:8443", Source: src(1)}, "no scheme, port or path"},
		{"host with path", App{Host: "a.test/x", Source: src(1)}, "no scheme, port or path"},
		{"host with underscore", App{Host: "a_b.test", Source: src(1)}, "not a valid host name"},
		{"deep wildcard", App{Host: "*.*.test", Source: src(1)}, "host"},
		{"inner wildcard", App{Host: "a.*.test", Source: src(1)}, "host"},
		{"wildcard over a TLD", App{Host: "*.com", Source: src(1)}, "a wildcard needs a domain with a dot"},
		{"wildcard over an address", App{Host: "*.10.0.0.1", Source: src(1)}, "not an address"},
		{"host with a zone", App{Host: "fe80::1%eth0", Source: src(1)}, "zone"},
		{"rule without a source", App{Host: "a.test", Source: src(7), Rules: []Rule{{Path: "/", Allow: AllowPublic}, {Path: "/"}}}, "test.yaml:7: rule 2: a rule needs exactly one decision"},
		{"no source at all", App{Host: "a.test", Rules: []Rule{{Path: "x", Allow: AllowPublic}}}, "(unknown): rule 1: path \"x\": must start with /"},
		{"valid: IPv4 host", App{Host: "10.0.0.1"}, ""},
		{"valid: IPv6 host", App{Host: "::1"}, ""},
		{"valid: bracketed IPv6 host", App{Host: "[2001:db8::1]"}, ""},
		{"valid: capitals and trailing dot", App{Host: "Wiki.Example.COM."}, ""},
		{"valid: every kind of rule", App{Host: "a.test", Rules: []Rule{
			{Path: "/a", Allow: AllowPublic},
			{Path: "/b/*", Allow: AllowAuthenticated, Methods: []string{"get", "M-SEARCH"}},
			{Path: "/c/**", Roles: []string{"a"}, Users: []string{"Bob"}, Networks: []string{"10.0.0.1", "::1", "10.0.0.0/8", "::ffff:10.0.0.0/104"}},
			{PathRegex: "/d/.*", Deny: true},
			{Path: "/e/", Deny: true},
		}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile([]App{tc.app})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Compile: %v", err)
				}
				return
			}
			var pe *Error
			if err == nil || !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Compile error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestCompileReportsEveryError(t *testing.T) {
	_, err := Compile([]App{
		{Host: "a.test", Source: src(1), Rules: []Rule{
			{Path: "/x", Allow: "maybe", Source: src(2)},
			{Path: "/ok", Allow: AllowPublic, Source: src(3)},
			{Path: "/a//b", Deny: true, Source: src(4)},
		}},
		{Host: "A.test.", Source: src(5)},
		{Host: "*.b.test", Source: src(6)},
		{Host: "*.B.test", Source: src(7)},
		{Host: "bad host", Source: src(8)},
	})
	if err == nil {
		t.Fatal("Compile accepted a broken policy")
	}
	var lines []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var pe *Error
		if !errors.As(e, &pe) {
			t.Errorf("error %v (%T) is not a *policy.Error", e, e)
			continue
		}
		lines = append(lines, pe.Error())
	}
	want := []string{
		`test.yaml:2: allow: "maybe" is not public or authenticated`,
		`test.yaml:4: path "/a//b": can never match a canonical path (write "/a/b")`,
		`test.yaml:5: host "A.test." is already served by the app at test.yaml:1`,
		`test.yaml:7: host "*.B.test" is already served by the app at test.yaml:6`,
		`test.yaml:8: host "bad host": not a valid host name (letters, digits, - and .)`,
	}
	if !slices.Equal(lines, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestCompileCopiesApps(t *testing.T) {
	apps := []App{{Host: "a.test", Rules: []Rule{
		{Path: "/admin/**", Roles: []string{"admin"}, Methods: []string{"GET"}, Source: src(1)},
		{Path: "/**", Deny: true, Source: src(2)},
	}}}
	p := mustCompile(t, apps)
	req := &Request{Host: "a.test", Method: "GET", Path: "/admin/x", User: bob}
	before := p.Decide(req)
	// The caller reuses its slices: the compiled policy must not follow.
	apps[0].Host = "b.test"
	apps[0].Rules[0].Roles[0] = "reader"
	apps[0].Rules[0].Deny = false
	apps[0].Rules[0].Methods[0] = "POST"
	apps[0].Rules[1] = Rule{Path: "/**", Allow: AllowPublic}
	after := p.Decide(req)
	if before != after || after.Action != Deny || after.Rule.Roles[0] != "admin" {
		t.Errorf("decision changed with the caller's slices: %+v then %+v (rule %+v)", before, after, *after.Rule)
	}
	if got := p.Apps()[0].Host; got != "a.test" {
		t.Errorf("Apps()[0].Host = %q, want a.test", got)
	}
	if d := p.Decide(req); d.Rule != &p.Apps()[0].Rules[0] {
		t.Errorf("Decision.Rule does not point into Apps()")
	}
}

func TestLookup(t *testing.T) {
	p := mustCompile(t, []App{
		{Host: "*.example.com"},
		{Host: "www.example.com"},
		{Host: "example.com"},
		{Host: "::1"},
		{Host: "10.0.0.1"},
	})
	tests := []struct {
		host string
		app  int
		ok   bool
	}{
		{"www.example.com", 1, true},
		{"WWW.Example.Com.:443", 1, true},
		{"wiki.example.com", 0, true},
		{"wiki.example.com:8443", 0, true},
		{"example.com", 2, true},
		{"a.wiki.example.com", -1, false},
		{"[::1]:8443", 3, true},
		{"[::1]", 3, true},
		{"::1", -1, false}, // a bare IPv6 Host is not valid HTTP
		{"10.0.0.1:80", 4, true},
		{"10.0.0.2", -1, false},
		{"", -1, false},
		{"example.com.evil.test", -1, false},
		{"evil.test#.example.com", -1, false},
		{"evil.test/.example.com", -1, false},
		{"evil.test@www.example.com", -1, false},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			app, ok := p.Lookup(tc.host)
			if app != tc.app || ok != tc.ok {
				t.Errorf("Lookup(%q) = %d, %v; want %d, %v", tc.host, app, ok, tc.app, tc.ok)
			}
		})
	}
}

func TestExplain(t *testing.T) {
	p := mustCompile(t, []App{{Host: "a.test", Source: src(1), Rules: []Rule{
		{Path: "/static/**", Allow: AllowPublic, Source: src(2)},
		{PathRegex: "/re/[0-9]+", Deny: true, Source: src(3)},
		{Path: "/api/**", Methods: []string{"GET"}, Roles: []string{"reader"}, Users: []string{"carol"}, Source: src(4)},
		{Path: "/api/**", Networks: []string{"10.0.0.0/8"}, Allow: AllowAuthenticated, Source: src(5)},
		{Path: "/api/**", Deny: true, Source: src(6)},
		{Path: "/**", Allow: AllowAuthenticated, Source: src(7)},
	}}})
	tests := []struct {
		name string
		req  Request
		want []string
	}{
		{"falls through every kind of mismatch", Request{Host: "a.test", Method: "post", Path: "/api/x", ClientIP: netip.MustParseAddr("192.0.2.1")}, []string{
			"- test.yaml:2: path /static/** does not match /api/x",
			"- test.yaml:3: path_regex does not match /api/x",
			"- test.yaml:4: method POST is not in [GET]",
			"- test.yaml:5: client 192.0.2.1 is not in networks [10.0.0.0/8]",
			"* test.yaml:6: matched: deny → deny",
		}},
		{"no client address", Request{Host: "a.test", Method: "POST", Path: "/api/x"}, []string{
			"- test.yaml:2: path /static/** does not match /api/x",
			"- test.yaml:3: path_regex does not match /api/x",
			"- test.yaml:4: method POST is not in [GET]",
			"- test.yaml:5: client address unknown, so not in networks [10.0.0.0/8]",
			"* test.yaml:6: matched: deny → deny",
		}},
		{"roles or users, anonymous", Request{Host: "a.test", Method: "GET", Path: "/api/x"}, []string{
			"- test.yaml:2: path /static/** does not match /api/x",
			"- test.yaml:3: path_regex does not match /api/x",
			"* test.yaml:4: matched: roles reader or users carol → login",
		}},
		{"first rule", Request{Host: "a.test", Method: "GET", Path: "/static/x"}, []string{
			"* test.yaml:2: matched: allow public → allow",
		}},
		{"unknown host: nothing tried", Request{Host: "b.test", Method: "GET", Path: "/"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, steps := p.Explain(&tc.req)
			if want := p.Decide(&tc.req); d != want {
				t.Errorf("Explain decided %+v, Decide %+v", d, want)
			}
			var got []string
			for _, s := range steps {
				mark := "-"
				if s.Matched {
					mark = "*"
				}
				got = append(got, fmt.Sprintf("%s %s: %s", mark, s.Rule.Source, s.Why))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestLint(t *testing.T) {
	p := mustCompile(t, []App{{Host: "a.test", Rules: []Rule{
		{Path: "/docs/**", Allow: AllowAuthenticated, Source: src(1)},
		{Path: "/docs/internal/**", Roles: []string{"staff"}, Source: src(2)}, // shadowed by 1
		{Path: "/api/**", Methods: []string{"GET"}, Allow: AllowPublic, Source: src(3)},
		{Path: "/api/x", Methods: []string{"POST"}, Deny: true, Source: src(4)},
		{Path: "/api/y", Methods: []string{"get"}, Deny: true, Source: src(5)}, // shadowed by 3
		{Path: "/api/z", Deny: true, Source: src(6)},                           // any method: not shadowed by 3
		{Path: "/*/z", Allow: AllowPublic, Source: src(7)},
		{Path: "/q/z/", Deny: true, Source: src(8)}, // shadowed by 7: "*" takes q
		{Path: "/q/*.css", Deny: true, Source: src(9)},
		{Path: "/q/app.css", Deny: true, Source: src(10)}, // shadowed by 9
		{Path: "/q/*", Deny: true, Source: src(11)},
		{Path: "/q/*.js", Deny: true, Source: src(12)}, // shadowed by 11
		{Path: "/net/**", Networks: []string{"10.0.0.0/8"}, Deny: true, Source: src(13)},
		{Path: "/net/a", Networks: []string{"10.1.0.0/16", "10.2.3.4"}, Deny: true, Source: src(14)}, // shadowed by 13
		{Path: "/net/b", Networks: []string{"10.1.0.0/16", "192.0.2.1"}, Deny: true, Source: src(15)},
		{Path: "/net/c", Deny: true, Source: src(16)},                                         // any address: not shadowed by 13
		{Path: "/hostbits/**", Networks: []string{"10.9.8.7/8"}, Deny: true, Source: src(17)}, // host bits
		{PathRegex: "/re/.*", Deny: true, Source: src(18)},
		{Path: "/re/x", Deny: true, Source: src(19)}, // shadowed in fact, but regexes are not compared
		{Path: "/**", Allow: AllowAuthenticated, Source: src(20)},
		{Path: "/anything", Deny: true, Source: src(21)},                     // shadowed by 20
		{PathRegex: "/x.*", Deny: true, Source: src(22)},                     // shadowed by 20
		{Path: "/**", Methods: []string{"GET"}, Deny: true, Source: src(23)}, // shadowed by 20
	}}})
	var got []string
	for _, w := range p.Lint() {
		got = append(got, fmt.Sprintf("%d: %s", w.Source.Line, w.Msg))
	}
	shadow := func(line, by int) string {
		return fmt.Sprintf("%d: this rule never matches: the rule at test.yaml:%d matches every request it would", line, by)
	}
	want := []string{shadow(2, 1), shadow(5, 3), shadow(8, 7), shadow(10, 9), shadow(12, 11), shadow(14, 13),
		"17: networks: 10.9.8.7/8 has host bits set; it means 10.0.0.0/8",
		shadow(21, 20), shadow(22, 20), shadow(23, 20)}
	if !slices.Equal(got, want) {
		t.Errorf("Lint:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Every warned rule really is dead: the oracle never lets it decide.
	o := newOracle(t, p)
	dead := map[int]bool{2: true, 5: true, 8: true, 10: true, 12: true, 14: true, 21: true, 22: true, 23: true}
	for _, path := range []string{"/docs/internal/x", "/api/y", "/q/z", "/q/app.css", "/q/a.js", "/net/a", "/anything", "/xyz"} {
		for _, ip := range []netip.Addr{{}, netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("10.2.3.4")} {
			for _, m := range []string{"GET", "POST"} {
				d := o.decide(&Request{Host: "a.test", Method: m, Path: path, ClientIP: ip})
				if d.Rule != nil && dead[d.Rule.Source.Line] {
					t.Errorf("%s %s from %v decided by line %d, which Lint calls dead", m, path, ip, d.Rule.Source.Line)
				}
			}
		}
	}
}

func TestRoles(t *testing.T) {
	p := mustCompile(t, []App{
		{Host: "a.test", Rules: []Rule{{Path: "/", Roles: []string{"b", "a"}}, {Path: "/x", Roles: []string{"a"}, Users: []string{"zed"}}}},
		{Host: "b.test", Rules: []Rule{{Path: "/", Roles: []string{"C", "b"}}, {Path: "/y", Allow: AllowPublic}}},
		{Host: "c.test"},
	})
	if got, want := p.Roles(), []string{"C", "a", "b"}; !slices.Equal(got, want) {
		t.Errorf("Roles() = %q, want %q", got, want)
	}
	if got := mustCompile(t, nil).Roles(); len(got) != 0 {
		t.Errorf("Roles() of an empty policy = %q", got)
	}
}

func TestSourceAndStrings(t *testing.T) {
	tests := []struct{ got, want string }{
		{Source{File: "gatehouse.yaml", Line: 12}.String(), "gatehouse.yaml:12"},
		{Source{File: "gatehouse.yaml"}.String(), "gatehouse.yaml"},
		{Source{Line: 3}.String(), "line 3"},
		{Source{}.String(), "(unknown)"},
		{(&Error{Source: Source{File: "g.yaml", Line: 4}, Msg: "bad"}).Error(), "g.yaml:4: bad"},
		{Deny.String(), "deny"},
		{Allow.String(), "allow"},
		{Login.String(), "login"},
		{Action(42).String(), "deny"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// benchPolicy has hosts apps of rules rules each: exact paths, "*" and
// "**" globs, some with methods or networks, a few regexes, and a
// catch-all at the end.
func benchPolicy(t testing.TB, hosts, rules int) *Policy {
	var apps []App
	for h := 0; h < hosts; h++ {
		app := App{Host: fmt.Sprintf("app%d.example.com", h)}
		for i := 0; i < rules-1; i++ {
			r := Rule{Source: src(i + 1), Roles: []string{fmt.Sprintf("role%d", i%5)}}
			switch i % 10 {
			case 0:
				r.PathRegex = fmt.Sprintf("/re%d/[0-9]+", i)
			case 1, 2:
				r.Path = fmt.Sprintf("/section%d/*/%d", i, i)
			case 3:
				r.Path = fmt.Sprintf("/section%d/**", i)
				r.Methods = []string{"POST"}
			case 4:
				r.Path = fmt.Sprintf("/section%d/**", i)
				r.Networks = []string{"192.168.0.0/16"}
			case 5:
				r.Path = fmt.Sprintf("/section%d/*.css", i)
			default:
				r.Path = fmt.Sprintf("/section%d/page/%d", i, i)
			}
			app.Rules = append(app.Rules, r)
		}
		app.Rules = append(app.Rules, Rule{Path: "/**", Allow: AllowAuthenticated, Source: src(rules)})
		apps = append(apps, app)
	}
	return mustCompile(t, apps)
}

// benchReqs mix what a gateway sees: late exact rules, "*" and "**"
// rules, a regex, a method or network that does not match, the
// catch-all, an unknown host.
var benchReqs = func() []*Request {
	u := &Identity{Name: "alice", Roles: []string{"role2"}}
	ip := netip.MustParseAddr("10.1.2.3")
	var reqs []*Request
	for _, r := range []struct{ host, method, path string }{
		{"app57.example.com", "GET", "/section97/page/97"},
		{"app3.example.com", "GET", "/section91/x/91"},
		{"APP99.example.com:443", "GET", "/section53/**/deep/path"},
		{"app42.example.com", "GET", "/section73/x"},
		{"app42.example.com", "POST", "/section73/x"},
		{"app8.example.com", "GET", "/section94/y"},
		{"app8.example.com", "GET", "/section95/app.css"},
		{"app0.example.com", "GET", "/re90/12345"},
		{"app1.example.com", "get", "/"},
		{"app77.example.com", "GET", "/some/other/page/"},
		{"unknown.example.com", "GET", "/"},
	} {
		reqs = append(reqs, &Request{Host: r.host, Method: r.method, Path: r.path, ClientIP: ip, User: u})
	}
	return reqs
}()

func BenchmarkDecide(b *testing.B) {
	p := benchPolicy(b, 100, 100)
	o := newOracle(b, p)
	for _, req := range benchReqs {
		if got, want := p.Decide(req), o.decide(req); got != want {
			b.Fatalf("%+v: compiled %v, oracle %v", req, describeDecision(p, got), describeDecision(p, want))
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p.Decide(benchReqs[i])
		i++
		if i == len(benchReqs) {
			i = 0
		}
	}
}

func BenchmarkDecideLinear(b *testing.B) {
	p := benchPolicy(b, 100, 100)
	o := newOracle(b, p)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		o.decide(benchReqs[i])
		i++
		if i == len(benchReqs) {
			i = 0
		}
	}
}
