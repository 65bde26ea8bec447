package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// Source is where a rule or app was written, for errors, logs, 403 pages
// and `gatehouse policy check`.
type Source struct {
	File string
	Line int
}

func (s Source) String() string {
	switch {
	case s.File == "" && s.Line == 0:
		return "(unknown)"
	case s.Line == 0:
		return s.File
	}
	return fmt.Sprintf("%s:%d", s.File, s.Line)
}

// Values of Rule.Allow.
const (
	AllowPublic        = "public"        // no sign-in needed
	AllowAuthenticated = "authenticated" // anyone signed in
)

// Rule is one access rule. Exactly one kind of decision is set: Allow,
// Roles and/or Users, or Deny.
type Rule struct {
	Path      string   // glob: "/a/b", "/a/*", "/static/*.css", "/a/**"
	PathRegex string   // or a Go regexp, anchored, against the canonical path
	Methods   []string // any case; empty: every method
	Networks  []string // CIDRs or addresses; empty: every client
	Allow     string   // AllowPublic or AllowAuthenticated
	Roles     []string // any of these roles
	Users     []string // any of these users
	Deny      bool
	Source    Source
}

// App is one protected host and its rules.
type App struct {
	Host                 string // "wiki.example.com", or "*.example.com" (one label in front)
	CaseInsensitivePaths bool   // for IIS-style apps
	Rules                []Rule
	Source               Source
}

// Error is a configuration mistake in a rule or app.
type Error struct {
	Source Source
	Msg    string
}

func (e *Error) Error() string { return e.Source.String() + ": " + e.Msg }

// Action is what a decision lets the caller do.
type Action int

// Actions.
const (
	Deny  Action = iota // 403 (or 421 when no app serves the host)
	Allow               // proxy the request
	Login               // sign in first: the rule needs an identity and the caller is anonymous
)

func (a Action) String() string {
	switch a {
	case Allow:
		return "allow"
	case Login:
		return "login"
	}
	return "deny"
}

// Identity is a signed-in caller.
type Identity struct {
	Name  string   // canonical username
	Roles []string // any order
}

// Request is what a decision looks at.
type Request struct {
	Host     string     // raw Host header value
	Method   string     // any case
	Path     string     // canonical path: Target.Path from ParseTarget
	ClientIP netip.Addr // per trusted_proxies
	User     *Identity  // nil: anonymous
}

// Decision is the outcome of Decide, with its evidence.
type Decision struct {
	Action Action
	App    int   // index of the app; -1 when no app serves the host
	Rule   *Rule // the rule that decided; nil when none matched (deny)
}

// Policy is a compiled, immutable set of apps and rules, safe for
// concurrent use.
type Policy struct {
	apps  []App
	comp  []*appMatcher
	exact map[string]int // canonical host → app
	wild  map[string]int // "example.com" for "*.example.com" → app
}

// Compile checks and compiles apps. Every error is an *Error; several are
// joined.
func Compile(apps []App) (*Policy, error) {
	p := &Policy{apps: apps, exact: map[string]int{}, wild: map[string]int{}}
	var errs []error
	fail := func(src Source, format string, args ...any) {
		errs = append(errs, &Error{Source: src, Msg: fmt.Sprintf(format, args...)})
	}
	for i := range apps {
		app := &apps[i]
		host, wildcard, err := compileHost(app.Host)
		if err != nil {
			fail(app.Source, "host %q: %v", app.Host, err)
		} else {
			table := p.exact
			if wildcard {
				table = p.wild
			}
			if prev, dup := table[host]; dup {
				fail(app.Source, "host %q is already served by the app at %s", app.Host, apps[prev].Source)
			}
			table[host] = i
		}
		m := &appMatcher{root: &node{}}
		for j := range app.Rules {
			cr, err := compileRule(&app.Rules[j], j, app.CaseInsensitivePaths)
			if err != nil {
				fail(app.Rules[j].Source, "%v", err)
				continue
			}
			m.add(cr)
		}
		p.comp = append(p.comp, m)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// compileHost validates an app host and returns it canonical, without the
// "*." of a wildcard.
func compileHost(h string) (string, bool, error) {
	wildcard := strings.HasPrefix(h, "*.")
	if wildcard {
		h = h[2:]
	}
	if strings.ContainsAny(h, ":*[]") && !isIPv6(h) {
		return "", false, errors.New("want a host name like wiki.example.com or *.example.com (no port, no scheme)")
	}
	c := CanonicalHost(h)
	if isIPv6(h) {
		c = CanonicalHost("[" + h + "]")
	}
	if c == "" {
		return "", false, errors.New("not a valid host name")
	}
	if wildcard && !strings.Contains(c, ".") {
		return "", false, errors.New("a wildcard needs a domain with a dot, like *.example.com")
	}
	return c, wildcard, nil
}

func isIPv6(h string) bool {
	a, err := netip.ParseAddr(h)
	return err == nil && a.Is6()
}

// Apps returns the apps as given to Compile (read-only).
func (p *Policy) Apps() []App { return p.apps }

// Lookup returns the app serving a raw Host value: exact names first,
// then "*.domain" with exactly one label in front.
func (p *Policy) Lookup(host string) (int, bool) {
	h := CanonicalHost(host)
	if h == "" {
		return -1, false
	}
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

// Decide returns what the first matching rule says about req. No app for
// the host: Deny with App -1. No matching rule: Deny with Rule nil. A
// failure while deciding denies.
func (p *Policy) Decide(req *Request) (d Decision) {
	app, ok := p.Lookup(req.Host)
	if !ok {
		return Decision{Action: Deny, App: -1}
	}
	defer func() {
		if recover() != nil {
			d = Decision{Action: Deny, App: app}
		}
	}()
	m := p.comp[app]
	path := req.Path
	if p.apps[app].CaseInsensitivePaths {
		path = strings.ToLower(path)
	}
	ip := req.ClientIP.Unmap()
	cr := m.match(path, req.Method, ip)
	if cr == nil {
		return Decision{Action: Deny, App: app}
	}
	return Decision{Action: cr.decide(req.User), App: app, Rule: cr.rule}
}

// Step is one rule tried by Explain.
type Step struct {
	Rule    *Rule
	Matched bool
	Why     string
}

// Explain decides like Decide and also says, for every rule up to the one
// that decided, why it did or did not match.
func (p *Policy) Explain(req *Request) (Decision, []Step) {
	app, ok := p.Lookup(req.Host)
	if !ok {
		return Decision{Action: Deny, App: -1}, nil
	}
	path := req.Path
	if p.apps[app].CaseInsensitivePaths {
		path = strings.ToLower(path)
	}
	ip := req.ClientIP.Unmap()
	var steps []Step
	for _, cr := range p.comp[app].rules {
		why := cr.mismatch(path, req.Method, ip)
		if why != "" {
			steps = append(steps, Step{Rule: cr.rule, Why: why})
			continue
		}
		d := Decision{Action: cr.decide(req.User), App: app, Rule: cr.rule}
		steps = append(steps, Step{Rule: cr.rule, Matched: true, Why: "matched: " + cr.describe() + " → " + d.Action.String()})
		return d, steps
	}
	return Decision{Action: Deny, App: app}, steps
}

// Warning is a lint finding.
type Warning struct {
	Source Source
	Msg    string
}

// Lint finds rules that can never decide because an earlier rule of the
// same app matches everything they match.
func (p *Policy) Lint() []Warning {
	var out []Warning
	for _, m := range p.comp {
		for j, later := range m.rules {
			for _, earlier := range m.rules[:j] {
				if earlier.shadows(later) {
					out = append(out, Warning{Source: later.rule.Source,
						Msg: fmt.Sprintf("this rule never matches: the rule at %s matches every request it would", earlier.rule.Source)})
					break
				}
			}
		}
	}
	return out
}

// Roles lists every role a rule names, sorted.
func (p *Policy) Roles() []string {
	var roles []string
	for _, app := range p.apps {
		for _, r := range app.Rules {
			roles = append(roles, r.Roles...)
		}
	}
	slices.Sort(roles)
	return slices.Compact(roles)
}

// compiledRule is a rule ready to match.
type compiledRule struct {
	index   int
	rule    *Rule
	glob    []string // pattern segments; nil for a regex rule
	tail    bool     // the pattern ends in "**"
	re      *regexp.Regexp
	methods []string // upper case
	nets    []netip.Prefix
	users   []string
}

var methodRE = regexp.MustCompile(`^[!#$%&'*+\-.^_|~0-9A-Za-z]+$`)

func compileRule(r *Rule, index int, ci bool) (*compiledRule, error) {
	cr := &compiledRule{index: index, rule: r}
	kinds := 0
	if r.Allow != "" {
		kinds++
		if r.Allow != AllowPublic && r.Allow != AllowAuthenticated {
			return nil, fmt.Errorf("allow: %q is not public or authenticated", r.Allow)
		}
	}
	if len(r.Roles) > 0 || len(r.Users) > 0 {
		kinds++
	}
	if r.Deny {
		kinds++
	}
	if kinds != 1 {
		return nil, errors.New("a rule needs exactly one decision: allow (public or authenticated), roles and/or users, or deny: true")
	}
	for _, role := range r.Roles {
		if strings.TrimSpace(role) == "" {
			return nil, errors.New("roles: an empty role name")
		}
	}
	for _, u := range r.Users {
		u = strings.ToLower(strings.TrimSpace(u))
		if u == "" {
			return nil, errors.New("users: an empty user name")
		}
		cr.users = append(cr.users, u)
	}
	for _, m := range r.Methods {
		if !methodRE.MatchString(m) {
			return nil, fmt.Errorf("methods: %q is not an HTTP method", m)
		}
		cr.methods = append(cr.methods, strings.ToUpper(m))
	}
	for _, n := range r.Networks {
		prefix, err := parseNetwork(n)
		if err != nil {
			return nil, fmt.Errorf("networks: %q is not a CIDR or an IP address", n)
		}
		cr.nets = append(cr.nets, prefix)
	}
	switch {
	case r.Path != "" && r.PathRegex != "":
		return nil, errors.New("a rule has path or path_regex, not both")
	case r.PathRegex != "":
		expr := `^(?:` + r.PathRegex + `)$`
		if ci {
			expr = `(?i)` + expr
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return nil, fmt.Errorf("path_regex: %v", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		cr.re = re
	case r.Path != "":
		glob, tail, err := compileGlob(r.Path, ci)
		if err != nil {
			return nil, fmt.Errorf("path %q: %v", r.Path, err)
		}
		cr.glob, cr.tail = glob, tail
	default:
		return nil, errors.New("a rule needs path or path_regex")
	}
	return cr, nil
}

func parseNetwork(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p.Addr())).Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// unmapBits is 96 for an IPv4-mapped IPv6 prefix, whose bits count the
// mapping prefix too.
func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

// compileGlob checks a path pattern and splits it into segments, without a
// trailing "**" (returned as tail) and without a trailing slash.
func compileGlob(pattern string, ci bool) ([]string, bool, error) {
	if !strings.HasPrefix(pattern, "/") {
		return nil, false, errors.New("must start with /")
	}
	if strings.ContainsAny(pattern, "?#;") {
		return nil, false, errors.New("must not contain ?, # or ; (rules never see the query, and ;params are ignored)")
	}
	t, err := ParseTarget(pattern)
	if err != nil {
		return nil, false, errors.New(strings.TrimPrefix(err.Error(), "policy: bad request target: "))
	}
	canon := t.Path
	if strings.Contains(pattern, "//") || strings.Contains(pattern, "/./") || strings.Contains(pattern, "/../") ||
		strings.HasSuffix(pattern, "/.") || strings.HasSuffix(pattern, "/..") {
		return nil, false, fmt.Errorf("can never match a canonical path (write %q)", canon)
	}
	if ci {
		canon = strings.ToLower(canon)
	}
	segs := splitPath(canon)
	tail := false
	for i, s := range segs {
		if strings.Contains(s, "**") {
			if s != "**" || i != len(segs)-1 {
				return nil, false, errors.New(`"**" must be a whole segment at the end (like /docs/**); use path_regex for more`)
			}
			tail = true
			segs = segs[:i]
		}
	}
	return segs, tail, nil
}

// splitPath splits a canonical path into segments, ignoring a trailing
// slash: "/" → [], "/a/b/" → [a b].
func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// decide applies the rule's decision to a caller.
func (cr *compiledRule) decide(u *Identity) Action {
	r := cr.rule
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
	for _, want := range r.Roles {
		if slices.Contains(u.Roles, want) {
			return Allow
		}
	}
	if slices.Contains(cr.users, u.Name) {
		return Allow
	}
	return Deny
}

// methodOK and netOK test the non-path conditions without allocating.
func (cr *compiledRule) methodOK(method string) bool {
	if len(cr.methods) == 0 {
		return true
	}
	for _, m := range cr.methods {
		if strings.EqualFold(m, method) {
			return true
		}
	}
	return false
}

func (cr *compiledRule) netOK(ip netip.Addr) bool {
	if len(cr.nets) == 0 {
		return true
	}
	if !ip.IsValid() {
		return false
	}
	for _, n := range cr.nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// pathOK matches the path the slow, obvious way (used by Explain and Lint).
func (cr *compiledRule) pathOK(path string) bool {
	if cr.re != nil {
		return cr.re.MatchString(path)
	}
	segs := splitPath(path)
	if cr.tail {
		if len(segs) < len(cr.glob) {
			return false
		}
	} else if len(segs) != len(cr.glob) {
		return false
	}
	for i, pat := range cr.glob {
		if !segmentMatch(pat, segs[i]) {
			return false
		}
	}
	return true
}

// mismatch says why the rule does not match, or "" when it does.
func (cr *compiledRule) mismatch(path, method string, ip netip.Addr) string {
	switch {
	case !cr.pathOK(path):
		if cr.re != nil {
			return "path_regex does not match " + path
		}
		return "path " + cr.rule.Path + " does not match " + path
	case !cr.methodOK(method):
		return fmt.Sprintf("method %s is not in %v", strings.ToUpper(method), cr.methods)
	case !cr.netOK(ip):
		return fmt.Sprintf("client %v is not in networks %v", ip, cr.rule.Networks)
	}
	return ""
}

func (cr *compiledRule) describe() string {
	r := cr.rule
	switch {
	case r.Deny:
		return "deny"
	case r.Allow != "":
		return "allow " + r.Allow
	}
	var parts []string
	if len(r.Roles) > 0 {
		parts = append(parts, "roles "+strings.Join(r.Roles, ","))
	}
	if len(r.Users) > 0 {
		parts = append(parts, "users "+strings.Join(r.Users, ","))
	}
	return strings.Join(parts, " or ")
}

// shadows reports whether cr matches every request that later does.
func (cr *compiledRule) shadows(later *compiledRule) bool {
	if cr.re != nil || later.re != nil || len(cr.nets) > 0 {
		return false
	}
	if len(cr.methods) > 0 {
		if len(later.methods) == 0 {
			return false
		}
		for _, m := range later.methods {
			if !slices.Contains(cr.methods, m) {
				return false
			}
		}
	}
	if !cr.tail {
		return !later.tail && slices.Equal(cr.glob, later.glob)
	}
	if len(later.glob) < len(cr.glob) {
		return false
	}
	for i, pat := range cr.glob {
		if pat != later.glob[i] && !(pat == "*" && later.glob[i] != "") {
			return false
		}
	}
	return true
}
