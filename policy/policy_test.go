package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
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

func TestDecide(t *testing.T) {
	p := mustCompile(t, []App{
		{Host: "wiki.example.com", Source: src(1), Rules: []Rule{
			{Path: "/static/**", Allow: AllowPublic, Source: src(2)},
			{Path: "/admin/**", Roles: []string{"admin"}, Source: src(3)},
			{Path: "/api/**", Methods: []string{"get", "HEAD"}, Roles: []string{"reader", "admin"}, Source: src(4)},
			{Path: "/api/**", Deny: true, Source: src(5)},
			{Path: "/intranet/**", Networks: []string{"10.0.0.0/8", "192.168.1.7"}, Allow: AllowPublic, Source: src(6)},
			{Path: "/intranet/**", Allow: AllowAuthenticated, Source: src(7)},
			{Path: "/files/*.pdf", Users: []string{"Bob"}, Source: src(8)},
			{Path: "/one/*", Allow: AllowPublic, Source: src(9)},
			{PathRegex: `/reports/[0-9]{4}`, Roles: []string{"reader"}, Source: src(10)},
			{Path: "/secret", Deny: true, Source: src(11)},
			{Path: "/", Allow: AllowPublic, Source: src(12)},
			{Path: "/**", Allow: AllowAuthenticated, Source: src(13)},
		}},
		{Host: "*.apps.example.com", Source: src(20), Rules: []Rule{{Path: "/**", Roles: []string{"dev"}, Source: src(21)}}},
		{Host: "legacy.example.com", CaseInsensitivePaths: true, Source: src(30), Rules: []Rule{
			{Path: "/Admin/**", Deny: true, Source: src(31)},
			{PathRegex: `/api/v[0-9]+/.*`, Allow: AllowPublic, Source: src(32)},
			{Path: "/**", Allow: AllowPublic, Source: src(33)},
		}},
		{Host: "empty.example.com", Source: src(40)},
	})
	ip := netip.MustParseAddr
	tests := []struct {
		name   string
		req    Request
		action Action
		line   int // 0: no rule
		app    int
	}{
		{"public asset anonymous", Request{Host: "wiki.example.com", Method: "GET", Path: "/static/app.css"}, Allow, 2, 0},
		{"prefix is the directory itself", Request{Host: "wiki.example.com", Method: "GET", Path: "/static"}, Allow, 2, 0},
		{"segment boundary", Request{Host: "wiki.example.com", Method: "GET", Path: "/static-evil/x"}, Login, 13, 0},
		{"admin anonymous", Request{Host: "wiki.example.com", Method: "GET", Path: "/admin/users"}, Login, 3, 0},
		{"admin as admin", Request{Host: "wiki.example.com", Method: "GET", Path: "/admin/users", User: alice}, Allow, 3, 0},
		{"admin as reader", Request{Host: "wiki.example.com", Method: "GET", Path: "/admin", User: bob}, Deny, 3, 0},
		{"admin trailing slash", Request{Host: "wiki.example.com", Method: "GET", Path: "/admin/", User: bob}, Deny, 3, 0},
		{"api read lower-case method", Request{Host: "wiki.example.com", Method: "get", Path: "/api/x", User: bob}, Allow, 4, 0},
		{"api write", Request{Host: "wiki.example.com", Method: "POST", Path: "/api/x", User: alice}, Deny, 5, 0},
		{"api odd method", Request{Host: "wiki.example.com", Method: "PROPFIND", Path: "/api/x", User: alice}, Deny, 5, 0},
		{"intranet inside", Request{Host: "wiki.example.com", Method: "GET", Path: "/intranet/x", ClientIP: ip("10.1.2.3")}, Allow, 6, 0},
		{"intranet single address", Request{Host: "wiki.example.com", Method: "GET", Path: "/intranet/x", ClientIP: ip("192.168.1.7")}, Allow, 6, 0},
		{"intranet v4-mapped", Request{Host: "wiki.example.com", Method: "GET", Path: "/intranet/x", ClientIP: ip("::ffff:10.1.2.3")}, Allow, 6, 0},
		{"intranet outside", Request{Host: "wiki.example.com", Method: "GET", Path: "/intranet/x", ClientIP: ip("203.0.113.9")}, Login, 7, 0},
		{"intranet unknown address", Request{Host: "wiki.example.com", Method: "GET", Path: "/intranet/x"}, Login, 7, 0},
		{"users rule", Request{Host: "wiki.example.com", Method: "GET", Path: "/files/report.pdf", User: bob}, Allow, 8, 0},
		{"users rule other user", Request{Host: "wiki.example.com", Method: "GET", Path: "/files/report.pdf", User: carol}, Deny, 8, 0},
		{"in-segment wildcard only", Request{Host: "wiki.example.com", Method: "GET", Path: "/files/report.pdf.exe", User: carol}, Allow, 13, 0},
		{"one segment", Request{Host: "wiki.example.com", Method: "GET", Path: "/one/x"}, Allow, 9, 0},
		{"one segment not two", Request{Host: "wiki.example.com", Method: "GET", Path: "/one/x/y"}, Login, 13, 0},
		{"one segment not zero", Request{Host: "wiki.example.com", Method: "GET", Path: "/one/"}, Login, 13, 0},
		{"regex", Request{Host: "wiki.example.com", Method: "GET", Path: "/reports/2024", User: bob}, Allow, 10, 0},
		{"regex anchored", Request{Host: "wiki.example.com", Method: "GET", Path: "/reports/2024/x", User: carol}, Allow, 13, 0},
		{"exact deny", Request{Host: "wiki.example.com", Method: "GET", Path: "/secret", User: alice}, Deny, 11, 0},
		{"exact deny trailing slash", Request{Host: "wiki.example.com", Method: "GET", Path: "/secret/", User: alice}, Deny, 11, 0},
		{"root", Request{Host: "wiki.example.com", Method: "GET", Path: "/"}, Allow, 12, 0},
		{"host case and port", Request{Host: "WIKI.example.com.:8443", Method: "GET", Path: "/"}, Allow, 12, 0},
		{"wildcard host", Request{Host: "x.apps.example.com", Method: "GET", Path: "/", User: alice}, Deny, 21, 1},
		{"wildcard host one label only", Request{Host: "a.b.apps.example.com", Method: "GET", Path: "/"}, Deny, 0, -1},
		{"wildcard not the apex", Request{Host: "apps.example.com", Method: "GET", Path: "/"}, Deny, 0, -1},
		{"unknown host", Request{Host: "evil.example", Method: "GET", Path: "/"}, Deny, 0, -1},
		{"case-insensitive deny", Request{Host: "legacy.example.com", Method: "GET", Path: "/ADMIN/x"}, Deny, 31, 2},
		{"case-insensitive regex", Request{Host: "legacy.example.com", Method: "GET", Path: "/API/V2/x"}, Allow, 32, 2},
		{"app without rules", Request{Host: "empty.example.com", Method: "GET", Path: "/", User: alice}, Deny, 0, 3},
	}
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

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		app  App
		want string
	}{
		{"no decision", App{Host: "a.test", Rules: []Rule{{Path: "/", Source: src(3)}}}, "test.yaml:3: a rule needs exactly one decision"},
		{"two decisions", App{Host: "a.test", Rules: []Rule{{Path: "/", Allow: AllowPublic, Deny: true, Source: src(3)}}}, "exactly one decision"},
		{"bad allow", App{Host: "a.test", Rules: []Rule{{Path: "/", Allow: "everyone", Source: src(3)}}}, `allow: "everyone" is not public or authenticated`},
		{"no path", App{Host: "a.test", Rules: []Rule{{Allow: AllowPublic, Source: src(3)}}}, "needs path or path_regex"},
		{"both paths", App{Host: "a.test", Rules: []Rule{{Path: "/", PathRegex: "/", Allow: AllowPublic, Source: src(3)}}}, "not both"},
		{"relative", App{Host: "a.test", Rules: []Rule{{Path: "admin/**", Allow: AllowPublic, Source: src(3)}}}, "must start with /"},
		{"inner **", App{Host: "a.test", Rules: []Rule{{Path: "/a/**/b", Allow: AllowPublic, Source: src(3)}}}, `"**" must be a whole segment at the end`},
		{"partial **", App{Host: "a.test", Rules: []Rule{{Path: "/a**", Allow: AllowPublic, Source: src(3)}}}, `"**" must be a whole segment`},
		{"dot segment", App{Host: "a.test", Rules: []Rule{{Path: "/a/../b", Allow: AllowPublic, Source: src(3)}}}, "can never match"},
		{"double slash", App{Host: "a.test", Rules: []Rule{{Path: "/a//b", Allow: AllowPublic, Source: src(3)}}}, "can never match"},
		{"encoded slash", App{Host: "a.test", Rules: []Rule{{Path: "/a%2fb", Allow: AllowPublic, Source: src(3)}}}, "encoded slash"},
		{"query", App{Host: "a.test", Rules: []Rule{{Path: "/a?x", Allow: AllowPublic, Source: src(3)}}}, "must not contain ?"},
		{"params", App{Host: "a.test", Rules: []Rule{{Path: "/a;x", Allow: AllowPublic, Source: src(3)}}}, "must not contain ?, # or ;"},
		{"bad regex", App{Host: "a.test", Rules: []Rule{{PathRegex: "/a(", Allow: AllowPublic, Source: src(3)}}}, "path_regex: missing closing )"},
		{"bad method", App{Host: "a.test", Rules: []Rule{{Path: "/", Methods: []string{"GET POST"}, Allow: AllowPublic, Source: src(3)}}}, "not an HTTP method"},
		{"bad network", App{Host: "a.test", Rules: []Rule{{Path: "/", Networks: []string{"10.0.0.0/33"}, Allow: AllowPublic, Source: src(3)}}}, "not a CIDR"},
		{"empty role", App{Host: "a.test", Rules: []Rule{{Path: "/", Roles: []string{""}, Source: src(3)}}}, "empty role"},
		{"bad host", App{Host: "http://a.test", Source: src(1)}, "test.yaml:1: host"},
		{"host with port", App{Host: "a.test:8443", Source: src(1)}, "no port"},
		{"deep wildcard", App{Host: "*.*.test", Source: src(1)}, "host"},
		{"wildcard over a TLD", App{Host: "*.com", Source: src(1)}, "a wildcard needs a domain with a dot"},
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
	_, err := Compile([]App{{Host: "a.test", Source: src(1)}, {Host: "A.test.", Source: src(5)}})
	if err == nil || !strings.Contains(err.Error(), "test.yaml:5: host \"A.test.\" is already served by the app at test.yaml:1") {
		t.Errorf("duplicate host: %v", err)
	}
}

func TestLint(t *testing.T) {
	p := mustCompile(t, []App{{Host: "a.test", Rules: []Rule{
		{Path: "/docs/**", Allow: AllowAuthenticated, Source: src(1)},
		{Path: "/docs/internal/**", Roles: []string{"staff"}, Source: src(2)}, // shadowed
		{Path: "/api/**", Methods: []string{"GET"}, Allow: AllowPublic, Source: src(3)},
		{Path: "/api/x", Methods: []string{"POST"}, Deny: true, Source: src(4)}, // not shadowed
		{Path: "/api/y", Methods: []string{"GET"}, Deny: true, Source: src(5)},  // shadowed
		{Path: "/*/z", Allow: AllowPublic, Source: src(6)},
		{Path: "/q/z", Deny: true, Source: src(7)}, // not shadowed: "*" is a segment, exact vs exact differ
		{Path: "/**", Allow: AllowAuthenticated, Source: src(8)},
		{Path: "/anything", Deny: true, Source: src(9)}, // shadowed
	}}})
	var lines []int
	for _, w := range p.Lint() {
		lines = append(lines, w.Source.Line)
	}
	if fmt.Sprint(lines) != "[2 5 9]" {
		t.Errorf("shadowed rules at lines %v, want [2 5 9]", lines)
	}
	if got := fmt.Sprint(mustCompile(t, []App{{Host: "a.test", Rules: []Rule{{Path: "/", Roles: []string{"b", "a"}}, {Path: "/x", Roles: []string{"a"}}}}}).Roles()); got != "[a b]" {
		t.Errorf("Roles = %s", got)
	}
}

// linear is the reference semantics: try every rule in order.
func linear(p *Policy, req *Request) Decision {
	app, ok := p.Lookup(req.Host)
	if !ok {
		return Decision{Action: Deny, App: -1}
	}
	path := req.Path
	if p.apps[app].CaseInsensitivePaths {
		path = strings.ToLower(path)
	}
	for _, cr := range p.comp[app].rules {
		if cr.mismatch(path, req.Method, req.ClientIP.Unmap()) == "" {
			return Decision{Action: cr.decide(req.User), App: app, Rule: cr.rule}
		}
	}
	return Decision{Action: Deny, App: app}
}

// randomApps builds a policy with many overlapping rules.
func randomApps(r *rand.Rand, hosts, rules int) []App {
	words := []string{"a", "b", "admin", "api", "static", "x", "*", "*.css", "v*", "**"}
	var apps []App
	for h := 0; h < hosts; h++ {
		app := App{Host: fmt.Sprintf("app%d.example.com", h), CaseInsensitivePaths: h%7 == 3}
		for i := 0; i < rules; i++ {
			n := 1 + r.IntN(4)
			var segs []string
			for j := 0; j < n; j++ {
				w := words[r.IntN(len(words))]
				if w == "**" && j != n-1 {
					w = "b"
				}
				segs = append(segs, w)
			}
			rule := Rule{Path: "/" + strings.Join(segs, "/"), Source: src(i + 1)}
			switch r.IntN(10) {
			case 0:
				rule = Rule{PathRegex: "/(a|api)/[^/]*", Source: src(i + 1)}
			case 1:
				rule.Methods = []string{"GET", "HEAD"}
			case 2:
				rule.Networks = []string{"10.0.0.0/8"}
			}
			switch r.IntN(4) {
			case 0:
				rule.Allow = AllowPublic
			case 1:
				rule.Allow = AllowAuthenticated
			case 2:
				rule.Roles = []string{"admin"}
			default:
				rule.Deny = true
			}
			app.Rules = append(app.Rules, rule)
		}
		apps = append(apps, app)
	}
	return apps
}

func randomPath(r *rand.Rand) string {
	words := []string{"a", "b", "admin", "api", "static", "x", "y.css", "v2", "ADMIN", ""}
	n := r.IntN(5)
	var segs []string
	for j := 0; j < n; j++ {
		segs = append(segs, words[r.IntN(len(words))])
	}
	t, err := ParseTarget("/" + strings.Join(segs, "/"))
	if err != nil {
		return "/"
	}
	return t.Path
}

func TestCompiledMatcherAgreesWithLinearScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	p := mustCompile(t, randomApps(r, 20, 40))
	methods := []string{"GET", "get", "POST", "HEAD"}
	ips := []netip.Addr{{}, netip.MustParseAddr("10.9.8.7"), netip.MustParseAddr("192.0.2.1")}
	users := []*Identity{nil, alice, bob}
	for i := 0; i < 20000; i++ {
		req := &Request{
			Host:     fmt.Sprintf("app%d.example.com", r.IntN(21)),
			Method:   methods[r.IntN(len(methods))],
			Path:     randomPath(r),
			ClientIP: ips[r.IntN(len(ips))],
			User:     users[r.IntN(len(users))],
		}
		if got, want := p.Decide(req), linear(p, req); got != want {
			t.Fatalf("%+v: compiled %+v, linear %+v", req, got, want)
		}
	}
}

func FuzzGlob(f *testing.F) {
	f.Add("/a/*/c", "/a/b/c")
	f.Add("/static/*.css", "/static/app.css")
	f.Add("/a/**", "/a")
	f.Add("/*x*y*", "/axxy")
	f.Fuzz(func(t *testing.T, pattern, target string) {
		p, err := Compile([]App{{Host: "a.test", Rules: []Rule{
			{Path: pattern, Allow: AllowPublic},
			{Path: "/**", Deny: true},
		}}})
		if err != nil {
			return
		}
		tg, err := ParseTarget(target)
		if err != nil {
			return
		}
		req := &Request{Host: "a.test", Method: "GET", Path: tg.Path}
		if got, want := p.Decide(req), linear(p, req); got != want {
			t.Fatalf("pattern %q path %q: compiled %+v, linear %+v", pattern, tg.Path, got, want)
		}
	})
}

// benchPolicy has hosts apps of rules rules each: exact paths, "*" and
// "**" globs, some with methods or networks, a few regexes.
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

var benchReq = &Request{Host: "app57.example.com", Method: "GET", Path: "/section97/page/97", ClientIP: netip.MustParseAddr("10.1.2.3"), User: &Identity{Name: "alice", Roles: []string{"role2"}}}

func BenchmarkDecide(b *testing.B) {
	p := benchPolicy(b, 100, 100)
	b.ReportAllocs()
	for b.Loop() {
		if p.Decide(benchReq).Rule == nil {
			b.Fatal("no rule")
		}
	}
}

func BenchmarkDecideLinear(b *testing.B) {
	p := benchPolicy(b, 100, 100)
	b.ReportAllocs()
	for b.Loop() {
		if linear(p, benchReq).Rule == nil {
			b.Fatal("no rule")
		}
	}
}

func BenchmarkParseTarget(b *testing.B) {
	for _, target := range []string{"/api/v1/users/42?expand=roles", "/app;jsessionid=1/a/../b/%7Euser"} {
		b.Run(target, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = ParseTarget(target)
			}
		})
	}
}
