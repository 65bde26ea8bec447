package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Source is where a rule or app was written, for errors, logs, 403 pages
// and `gatehouse policy check`.
type Source struct {
	File string
	Line int
}

// String is "file:line", or what is known of it: "file", "line 3", or
// "(unknown)" for a rule built in code without a source.
func (s Source) String() string {
	return string(s.AppendTo(nil))
}

// AppendTo appends String's text to b; the access log writes it without
// allocating.
func (s Source) AppendTo(b []byte) []byte {
	switch {
	case s.File == "" && s.Line <= 0:
		return append(b, "(unknown)"...)
	case s.File == "":
		return strconv.AppendInt(append(b, "line "...), int64(s.Line), 10)
	case s.Line <= 0:
		return append(b, s.File...)
	}
	return strconv.AppendInt(append(append(b, s.File...), ':'), int64(s.Line), 10)
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

// Error is a configuration mistake in a rule or app, tied to where it was
// written so `gatehouse validate` can name the file and line.
type Error struct {
	Source Source
	Msg    string
}

// Error is "file:line: message".
func (e *Error) Error() string { return e.Source.String() + ": " + e.Msg }

// Action is what a decision lets the caller do.
type Action int

// Actions.
const (
	Deny  Action = iota // 403 (or 421 when no app serves the host)
	Allow               // proxy the request
	Login               // sign in first: the rule needs an identity and the caller is anonymous
)

// String is "deny", "allow" or "login", for logs and `policy check`.
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
	Name  string   // canonical username (lower-case)
	Roles []string // any order
}

// Request is what a decision looks at.
type Request struct {
	Host     string     // raw Host header value; Decide canonicalizes it
	Method   string     // as received, any case
	Path     string     // canonical path: Target.Path from ParseTarget
	ClientIP netip.Addr // per trusted_proxies; the zero Addr when unknown
	User     *Identity  // nil: anonymous
}

// Decision is the outcome of Decide, with its evidence.
type Decision struct {
	Action Action
	App    int   // index into the apps given to Compile; -1 when no app serves the host
	Rule   *Rule // the rule that decided; nil when none matched (deny) or no app
}

// Policy is a compiled, immutable set of apps and rules, safe for
// concurrent use. Compile copies the apps it is given, so changing them
// afterwards changes nothing.
type Policy struct {
	apps  []App
	comp  []*appMatcher
	exact map[string]int // canonical host → app
	wild  map[string]int // "example.com" for "*.example.com" → app
}

// Compile checks and compiles apps. Every error is an *Error naming the
// rule or app at fault; several are joined with errors.Join.
func Compile(apps []App) (*Policy, error) {
	apps = cloneApps(apps)
	p := &Policy{apps: apps, exact: map[string]int{}, wild: map[string]int{}}
	var errs []error
	for i := range apps {
		app := &apps[i]
		host, wildcard, err := compileHost(app.Host)
		if err != nil {
			errs = append(errs, &Error{Source: app.Source, Msg: fmt.Sprintf("host %q: %v", app.Host, err)})
		} else {
			table := p.exact
			if wildcard {
				table = p.wild
			}
			if prev, dup := table[host]; dup {
				errs = append(errs, &Error{Source: app.Source,
					Msg: fmt.Sprintf("host %q is already served by the app at %s", app.Host, apps[prev].Source)})
			} else {
				table[host] = i
			}
		}
		m := newMatcher()
		for j := range app.Rules {
			r := &app.Rules[j]
			cr, err := compileRule(r, j, app.CaseInsensitivePaths)
			if err != nil {
				errs = append(errs, ruleError(app, j, err))
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

// ruleError ties err to rule j of app: its own source when it has one,
// else the app's with the rule's number, so a policy built in code still
// gets a useful message.
func ruleError(app *App, j int, err error) *Error {
	r := &app.Rules[j]
	if r.Source != (Source{}) {
		return &Error{Source: r.Source, Msg: err.Error()}
	}
	return &Error{Source: app.Source, Msg: fmt.Sprintf("rule %d: %v", j+1, err)}
}

// cloneApps copies apps deeply enough that the caller can no longer change
// what a compiled Policy decides, nor what Decision.Rule points at.
func cloneApps(apps []App) []App {
	out := slices.Clone(apps)
	for i := range out {
		out[i].Rules = slices.Clone(out[i].Rules)
		for j := range out[i].Rules {
			r := &out[i].Rules[j]
			r.Methods = slices.Clone(r.Methods)
			r.Networks = slices.Clone(r.Networks)
			r.Roles = slices.Clone(r.Roles)
			r.Users = slices.Clone(r.Users)
		}
	}
	return out
}

// compileHost validates an app host and returns it canonical, without the
// "*." of a wildcard. Names are letters, digits, "-" and "."; IP literals
// are allowed (IPv6 with or without brackets).
func compileHost(h string) (string, bool, error) {
	wildcard := strings.HasPrefix(h, "*.")
	if wildcard {
		h = h[2:]
	}
	lit := h
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		lit = h[1 : len(h)-1]
	}
	if a, err := netip.ParseAddr(lit); err == nil {
		switch {
		case wildcard:
			return "", false, errors.New("a wildcard needs a domain name, not an address")
		case a.Zone() != "":
			return "", false, errors.New("an address with a zone cannot be a Host")
		}
		return a.String(), false, nil // as CanonicalHost writes it
	}
	if strings.ContainsAny(h, ":*[]/") {
		return "", false, errors.New("want a host name like wiki.example.com or *.example.com (no scheme, port or path)")
	}
	c := CanonicalHost(h)
	if c == "" {
		return "", false, errors.New("not a valid host name (letters, digits, - and .)")
	}
	if wildcard {
		dot := strings.LastIndexByte(c, '.')
		if dot < 0 {
			return "", false, errors.New("a wildcard needs a domain with a dot, like *.example.com")
		}
		if _, err := strconv.Atoi(c[dot+1:]); err == nil {
			return "", false, errors.New("a wildcard needs a domain name, not an address")
		}
	}
	return c, wildcard, nil
}

// Apps returns the compiled apps, in the order given to Compile. The
// slice is shared: read it, do not change it.
func (p *Policy) Apps() []App { return p.apps }

// Decide returns what the first matching rule says about req. No app for
// the host: Deny with App -1. No matching rule: Deny with Rule nil. A path
// that is not canonical (see ParseTarget), or any failure while deciding,
// denies.
func (p *Policy) Decide(req *Request) (d Decision) {
	if req == nil {
		return Decision{Action: Deny, App: -1}
	}
	app, ok := p.Lookup(req.Host)
	if !ok {
		return Decision{Action: Deny, App: -1}
	}
	return p.DecideIn(app, req)
}

// DecideIn is Decide for a caller that already looked the host up: app is
// what Lookup(req.Host) returned. An app index out of range is denied.
func (p *Policy) DecideIn(app int, req *Request) (d Decision) {
	if req == nil || app < 0 || app >= len(p.apps) {
		return Decision{Action: Deny, App: -1}
	}
	defer func() {
		if recover() != nil {
			d = Decision{Action: Deny, App: app}
		}
	}()
	path, ok := p.matchPath(app, req.Path)
	if !ok {
		return Decision{Action: Deny, App: app}
	}
	cr := p.comp[app].match(path, req.Method, clientAddr(req.ClientIP))
	if cr == nil {
		return Decision{Action: Deny, App: app}
	}
	return Decision{Action: cr.decide(req.User), App: app, Rule: cr.rule}
}

// matchPath is the path rules of app see: req.Path, lower-cased for
// case_insensitive_paths. ok is false for a path ParseTarget could not
// have produced.
func (p *Policy) matchPath(app int, path string) (string, bool) {
	if !plausiblyCanonical(path) {
		return "", false
	}
	if p.apps[app].CaseInsensitivePaths {
		path = strings.ToLower(path) // no allocation when already lower-case
	}
	return path, true
}

// clientAddr is the address networks are matched against: IPv4-mapped
// IPv6 as IPv4, without a zone (a zone would make every prefix miss, and
// a deny rule with networks would then let the caller through).
func clientAddr(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

// plausiblyCanonical cheaply checks the shape of a canonical path: it
// starts with "/", has no empty segment but a trailing one, no "." or ".."
// segment, no ";", "?", "#", backslash, space, control or non-ASCII byte,
// and no encoded slash or backslash. Decide denies anything else, so a
// caller that forgot ParseTarget fails closed.
func plausiblyCanonical(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	segStart := 1
	for i := 1; i <= len(p); i++ {
		if i < len(p) {
			switch c := p[i]; {
			case c == '/':
			case c <= ' ' || c >= 0x7f || c == ';' || c == '?' || c == '#' || c == '\\':
				return false
			case c == '%':
				if i+2 >= len(p) {
					return false
				}
				if e := p[i+1 : i+3]; e == "2F" || e == "2f" || e == "5C" || e == "5c" {
					return false
				}
				continue
			default:
				continue
			}
		}
		seg := p[segStart:i]
		if seg == "." || seg == ".." || (seg == "" && i < len(p)) {
			return false
		}
		segStart = i + 1
	}
	return true
}

// Step is one rule tried by Explain: whether it matched, and why or why
// not (e.g. "path /admin/** does not match /api/x", "method POST is not
// in [GET]", "client 192.0.2.1 is not in networks [10.0.0.0/8]",
// "matched: roles admin → login").
type Step struct {
	Rule    *Rule
	Matched bool
	Why     string
}

// Explain decides exactly like Decide and also returns every rule tried,
// in order, up to the one that decided, with why each did or did not
// match; it is for `gatehouse policy check -explain`, not the hot path.
func (p *Policy) Explain(req *Request) (Decision, []Step) {
	if req == nil {
		return Decision{Action: Deny, App: -1}, nil
	}
	app, ok := p.Lookup(req.Host)
	if !ok {
		return Decision{Action: Deny, App: -1}, nil
	}
	path, ok := p.matchPath(app, req.Path)
	if !ok {
		return Decision{Action: Deny, App: app}, nil
	}
	ip := clientAddr(req.ClientIP)
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
