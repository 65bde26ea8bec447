package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// compiledRule is a rule ready to match.
type compiledRule struct {
	index   int
	rule    *Rule
	glob    []string // pattern segments, without a trailing "**"; nil for "/" and regex rules
	tail    bool     // the pattern ends in "**"
	re      *regexp.Regexp
	prefix  string   // a literal every path re matches starts with
	methods []string // upper case
	nets    []netip.Prefix
	users   []string // lower case
}

// methodRE is an HTTP token (RFC 9110, section 5.6.2).
var methodRE = regexp.MustCompile(`^[!#$%&'*+\-.^_|~0-9A-Za-z]+$`)

// compileRule checks r (rule number index of its app) and compiles it. ci
// is the app's case_insensitive_paths.
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
		switch {
		case strings.TrimSpace(role) == "":
			return nil, errors.New("roles: an empty role name")
		case strings.TrimSpace(role) != role:
			return nil, fmt.Errorf("roles: %q has spaces around it", role)
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
			return nil, fmt.Errorf("networks: %q %v", n, err)
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
		cr.prefix, _ = re.LiteralPrefix()
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

// parseNetwork reads a CIDR or a bare address as a prefix that matches an
// unmapped, zoneless client address (see clientAddr). Host bits of a CIDR
// are masked off; Lint warns about them.
func parseNetwork(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, errors.New("is not a CIDR or an IP address")
		}
		a, bits := p.Addr(), p.Bits()
		if a.Is4In6() {
			if bits < 96 {
				return netip.Prefix{}, errors.New("is an IPv4-mapped prefix shorter than /96")
			}
			a, bits = a.Unmap(), bits-96
		}
		return netip.PrefixFrom(a, bits).Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Prefix{}, errors.New("is not a CIDR or an IP address")
	case a.Zone() != "":
		return netip.Prefix{}, errors.New("has a zone; write the address without %zone")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// compileGlob checks a path pattern and splits its canonical form into
// segments, without a trailing "**" (returned as tail) and without a
// trailing slash. A pattern that could never match a canonical path is an
// error rather than a rule that silently never applies.
func compileGlob(pattern string, ci bool) ([]string, bool, error) {
	if !strings.HasPrefix(pattern, "/") {
		return nil, false, errors.New("must start with /")
	}
	if strings.ContainsAny(pattern, "?#;") {
		return nil, false, errors.New("must not contain ?, # or ; (rules never see the query, and ;params are ignored)")
	}
	t, err := ParseTarget(pattern)
	if err != nil {
		return nil, false, errors.New(strings.TrimPrefix(err.Error(), ErrBadTarget.Error()+": "))
	}
	canon := t.Path
	segs := strings.Split(pattern[1:], "/")
	for i, s := range segs {
		name := strings.ReplaceAll(strings.ToLower(s), "%2e", ".")
		if name == "." || name == ".." || (name == "" && i < len(segs)-1) {
			return nil, false, fmt.Errorf("can never match a canonical path (write %q)", canon)
		}
	}
	if ci {
		canon = strings.ToLower(canon)
	}
	glob := splitPath(canon)
	tail := false
	for i, s := range glob {
		if strings.Contains(s, "**") {
			if s != "**" || i != len(glob)-1 {
				return nil, false, errors.New(`"**" must be a whole segment at the end (like /docs/**); use path_regex for more`)
			}
			tail = true
			glob = glob[:i]
		}
	}
	return glob, tail, nil
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

// regexOK matches a regex rule, skipping the regex engine when the path
// does not start with the literal prefix every match starts with.
func (cr *compiledRule) regexOK(path string) bool {
	return strings.HasPrefix(path, cr.prefix) && cr.re.MatchString(path)
}

// pathOK matches the path one rule at a time (for Explain): the same
// segment semantics as the trie, without it.
func (cr *compiledRule) pathOK(path string) bool {
	if cr.re != nil {
		return cr.regexOK(path)
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
		if !ip.IsValid() {
			return fmt.Sprintf("client address unknown, so not in networks %v", cr.rule.Networks)
		}
		return fmt.Sprintf("client %v is not in networks %v", ip, cr.rule.Networks)
	}
	return ""
}

// describe names the rule's decision: "deny", "allow public", "roles a,b
// or users c".
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
