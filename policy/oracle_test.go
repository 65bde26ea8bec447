package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// oracle is the reference semantics: it tries every rule in order and
// matches each with a regular expression written straight from the rule's
// text. It shares no matching code with the compiled matcher; only
// ParseTarget, to canonicalize a pattern the way a path is.
type oracle struct {
	p    *Policy
	apps [][]oracleRule
}

type oracleRule struct {
	rule *Rule
	re   *regexp.Regexp
	nets []netip.Prefix
}

func newOracle(t testing.TB, p *Policy) *oracle {
	t.Helper()
	o := &oracle{p: p}
	for _, app := range p.Apps() {
		var rules []oracleRule
		for i := range app.Rules {
			r := &app.Rules[i]
			expr := r.PathRegex
			if r.Path != "" {
				expr = globExpr(t, r.Path, app.CaseInsensitivePaths)
			}
			if app.CaseInsensitivePaths {
				expr = "(?i)" + expr
			}
			or := oracleRule{rule: r, re: regexp.MustCompile("^(?:" + expr + ")$")}
			for _, n := range r.Networks {
				pr, err := netip.ParsePrefix(n)
				if err != nil {
					a := netip.MustParseAddr(n).Unmap()
					pr = netip.PrefixFrom(a, a.BitLen())
				} else if pr.Addr().Is4In6() {
					pr = netip.PrefixFrom(pr.Addr().Unmap(), pr.Bits()-96)
				}
				or.nets = append(or.nets, pr.Masked())
			}
			rules = append(rules, or)
		}
		o.apps = append(o.apps, rules)
	}
	return o
}

// globExpr translates a glob into a regular expression: "*" alone is one
// non-empty segment, "*" inside a segment any run of non-slashes, a final
// "**" any depth including none, and a trailing slash on the path is
// optional for the others.
func globExpr(t testing.TB, pattern string, ci bool) string {
	tg, err := ParseTarget(pattern)
	if err != nil {
		t.Fatalf("oracle: pattern %q: %v", pattern, err)
	}
	canon := tg.Path
	if ci {
		canon = strings.ToLower(canon)
	}
	if canon != "/" {
		canon = strings.TrimSuffix(canon, "/")
	}
	tail := canon == "/**" || strings.HasSuffix(canon, "/**")
	if tail {
		canon = strings.TrimSuffix(canon, "/**")
	}
	var b strings.Builder
	var segs []string
	if canon != "" && canon != "/" {
		segs = strings.Split(canon[1:], "/")
	}
	for _, s := range segs {
		b.WriteString("/")
		if s == "*" {
			b.WriteString("[^/]+")
			continue
		}
		for i, lit := range strings.Split(s, "*") {
			if i > 0 {
				b.WriteString("[^/]*")
			}
			b.WriteString(regexp.QuoteMeta(lit))
		}
	}
	switch {
	case tail:
		b.WriteString("(?:/.*)?")
	case len(segs) == 0:
		b.WriteString("/")
	default:
		b.WriteString("/?")
	}
	return b.String()
}

func (o *oracle) decide(req *Request) Decision {
	host := CanonicalHost(req.Host)
	app := -1
	for i, a := range o.p.Apps() { // exact names first
		if host != "" && strings.ToLower(strings.TrimSuffix(strings.Trim(a.Host, "[]"), ".")) == host {
			app = i
		}
	}
	if app < 0 {
		for i, a := range o.p.Apps() {
			suffix, ok := strings.CutPrefix(strings.ToLower(a.Host), "*")
			if ok && strings.HasSuffix(host, suffix) && !strings.Contains(strings.TrimSuffix(host, suffix), ".") && len(host) > len(suffix) {
				app = i
			}
		}
	}
	if app < 0 {
		return Decision{Action: Deny, App: -1}
	}
	path := req.Path
	if o.p.Apps()[app].CaseInsensitivePaths {
		path = strings.ToLower(path)
	}
	ip := req.ClientIP.Unmap().WithZone("")
	for _, r := range o.apps[app] {
		if !r.re.MatchString(path) {
			continue
		}
		if len(r.rule.Methods) > 0 && !slices.ContainsFunc(r.rule.Methods, func(m string) bool { return strings.EqualFold(m, req.Method) }) {
			continue
		}
		if len(r.nets) > 0 && !slices.ContainsFunc(r.nets, func(n netip.Prefix) bool { return ip.IsValid() && n.Contains(ip) }) {
			continue
		}
		return Decision{Action: oracleAction(r.rule, req.User), App: app, Rule: r.rule}
	}
	return Decision{Action: Deny, App: app}
}

func oracleAction(r *Rule, u *Identity) Action {
	switch {
	case r.Deny:
		return Deny
	case r.Allow == AllowPublic:
		return Allow
	case u == nil:
		return Login
	case r.Allow == AllowAuthenticated:
		return Allow
	}
	for _, role := range u.Roles {
		if slices.Contains(r.Roles, role) {
			return Allow
		}
	}
	for _, name := range r.Users {
		if strings.ToLower(name) == u.Name {
			return Allow
		}
	}
	return Deny
}

// randomApps builds hosts apps of rules overlapping rules each, from words
// chosen to collide: literals, "*", wildcards inside segments, "**",
// mixed case, trailing slashes, methods, networks, regexes, every kind of
// decision.
func randomApps(r *rand.Rand, hosts, rules int) []App {
	words := []string{"a", "b", "admin", "Admin", "api", "static", "x", "*", "*.css", "v*", "*a*", "a*b", "%41", "caf%C3%A9", "**"}
	nets := []string{"10.0.0.0/8", "10.1.0.0/16", "192.0.2.1", "2001:db8::/32", "::ffff:10.9.0.0/112", "10.9.8.7/8"}
	var apps []App
	for h := 0; h < hosts; h++ {
		app := App{Host: fmt.Sprintf("app%d.example.com", h), CaseInsensitivePaths: h%3 == 1, Source: src(1000 * h)}
		if h == hosts-1 && h > 0 {
			app.Host = "*.example.com"
		}
		for i := 0; i < rules; i++ {
			n := r.IntN(5)
			var segs []string
			for j := 0; j < n; j++ {
				w := words[r.IntN(len(words))]
				if w == "**" && j != n-1 {
					w = "b"
				}
				segs = append(segs, w)
			}
			rule := Rule{Path: "/" + strings.Join(segs, "/"), Source: src(1000*h + i + 1)}
			if n > 0 && segs[n-1] != "**" && r.IntN(4) == 0 {
				rule.Path += "/"
			}
			switch r.IntN(12) {
			case 0:
				rule = Rule{PathRegex: "/(a|api)/[^/]*", Source: rule.Source}
			case 1:
				rule = Rule{PathRegex: "/x.*", Source: rule.Source}
			case 2, 3:
				rule.Methods = []string{"GET", "head"}
			case 4, 5:
				rule.Networks = []string{nets[r.IntN(len(nets))], nets[r.IntN(len(nets))]}
			}
			switch r.IntN(5) {
			case 0:
				rule.Allow = AllowPublic
			case 1:
				rule.Allow = AllowAuthenticated
			case 2:
				rule.Roles = []string{"admin"}
			case 3:
				rule.Users = []string{"Bob"}
				if r.IntN(2) == 0 {
					rule.Roles = []string{"ops"}
				}
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
	words := []string{"a", "b", "admin", "ADMIN", "api", "static", "x", "y.css", "v2", "ab", "aXb", "ba", "caf%C3%A9", "%41", "", ".", "..", "x;p=1"}
	n := r.IntN(6)
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

var (
	oracleMethods = []string{"GET", "get", "POST", "HEAD", "DELETE"}
	oracleIPs     = []netip.Addr{{}, netip.MustParseAddr("10.9.8.7"), netip.MustParseAddr("::ffff:10.9.8.7"),
		netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"),
		netip.MustParseAddr("2001:db8::1%eth0"), netip.MustParseAddr("198.51.100.1")}
	oracleUsers = []*Identity{nil, alice, bob, carol, {Name: "dave", Roles: []string{"ops"}}}
	oracleHosts = []string{"app0.example.com", "APP1.example.com:8443", "app2.example.com.", "app3.example.com", "zz.example.com", "a.b.example.com", "example.com", "other.test"}
)

func TestCompiledMatcherAgreesWithOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 12; round++ {
		p := mustCompile(t, randomApps(r, 5, 40))
		o := newOracle(t, p)
		for i := 0; i < 1000; i++ {
			req := &Request{
				Host:     oracleHosts[r.IntN(len(oracleHosts))],
				Method:   oracleMethods[r.IntN(len(oracleMethods))],
				Path:     randomPath(r),
				ClientIP: oracleIPs[r.IntN(len(oracleIPs))],
				User:     oracleUsers[r.IntN(len(oracleUsers))],
			}
			got, want := p.Decide(req), o.decide(req)
			if got != want {
				t.Fatalf("round %d, %+v (user %v): compiled %v, oracle %v", round, req, req.User, describeDecision(p, got), describeDecision(p, want))
			}
			if e, _ := p.Explain(req); e != got {
				t.Fatalf("%+v: Explain %v, Decide %v", req, describeDecision(p, e), describeDecision(p, got))
			}
		}
	}
}

func describeDecision(p *Policy, d Decision) string {
	if d.Rule == nil {
		return fmt.Sprintf("%v (app %d, no rule)", d.Action, d.App)
	}
	return fmt.Sprintf("%v (app %d, rule %+v)", d.Action, d.App, *d.Rule)
}

// FuzzGlob compares the compiled matcher with the oracle on one pattern
// (any glob the fuzzer finds that Compile accepts) and one target.
func FuzzGlob(f *testing.F) {
	f.Add("/a/*/c", "/a/b/c", false)
	f.Add("/static/*.css", "/static/app.css", false)
	f.Add("/a/**", "/a", false)
	f.Add("/a/**", "/a-evil", false)
	f.Add("/*x*y*", "/axxy", false)
	f.Add("/Admin/**", "/ADMIN/x/", true)
	f.Add("/caf%c3%a9/*", "/café/x", false)
	f.Add("/a/", "/a", false)
	f.Add("/", "/", false)
	f.Fuzz(func(t *testing.T, pattern, target string, ci bool) {
		p, err := Compile([]App{{Host: "a.test", CaseInsensitivePaths: ci, Rules: []Rule{
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
		if got, want := p.Decide(req), newOracle(t, p).decide(req); got != want {
			t.Fatalf("pattern %q path %q: compiled %v, oracle %v", pattern, tg.Path, describeDecision(p, got), describeDecision(p, want))
		}
	})
}

// FuzzDecide compares the compiled matcher with the oracle on a random
// policy (from seed) and a fuzzed request.
func FuzzDecide(f *testing.F) {
	f.Add(uint64(1), "/admin/x", "GET", []byte{10, 9, 8, 7}, uint8(0), uint8(0))
	f.Add(uint64(2), "/a/b/c/", "post", []byte{}, uint8(1), uint8(1))
	f.Add(uint64(3), "/ADMIN/..;/api/x", "HEAD", []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint8(2), uint8(2))
	f.Add(uint64(4), "/static/y.css", "GET", []byte{192, 0, 2, 1}, uint8(3), uint8(4))
	f.Fuzz(func(t *testing.T, seed uint64, target, method string, ip []byte, who, host uint8) {
		tg, err := ParseTarget(target)
		if err != nil {
			return
		}
		r := rand.New(rand.NewPCG(seed, seed>>32))
		p := mustCompile(t, randomApps(r, 4, 12))
		addr, _ := netip.AddrFromSlice(ip)
		req := &Request{
			Host:     oracleHosts[int(host)%len(oracleHosts)],
			Method:   method,
			Path:     tg.Path,
			ClientIP: addr,
			User:     oracleUsers[int(who)%len(oracleUsers)],
		}
		got, want := p.Decide(req), newOracle(t, p).decide(req)
		if got != want {
			t.Fatalf("seed %d %+v: compiled %v, oracle %v", seed, req, describeDecision(p, got), describeDecision(p, want))
		}
		// The proxy looks the host up first and then asks DecideIn.
		if app, ok := p.Lookup(req.Host); ok {
			if in := p.DecideIn(app, req); in != got {
				t.Fatalf("seed %d %+v: DecideIn %v, Decide %v", seed, req, describeDecision(p, in), describeDecision(p, got))
			}
		}
		for _, bad := range []int{-1, len(p.Apps()), 1 << 30} {
			if d := p.DecideIn(bad, req); d.Action != Deny || d.App != -1 {
				t.Fatalf("DecideIn(%d): %v, want a denial with no app", bad, describeDecision(p, d))
			}
		}
	})
}
