package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Warning is a lint finding: the configuration works, but probably not as
// its author meant.
type Warning struct {
	Source Source
	Msg    string
}

// Lint finds rules that can never decide because an earlier rule of the
// same app matches every request they would (first match wins), and
// networks written with host bits set ("10.0.0.1/8" means 10.0.0.0/8).
// It errs on the side of silence: a warning is always true, but not every
// dead rule is found.
func (p *Policy) Lint() []Warning {
	var out []Warning
	for _, m := range p.comp {
		for j, later := range m.rules {
			for _, n := range later.rule.Networks {
				if pr, err := netip.ParsePrefix(n); err == nil && pr != pr.Masked() {
					out = append(out, Warning{Source: later.rule.Source,
						Msg: fmt.Sprintf("networks: %s has host bits set; it means %s", n, pr.Masked())})
				}
			}
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

// Roles lists every role any rule names, sorted and without duplicates,
// so the CLI can warn about roles no user has.
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

// shadows reports whether cr matches every request that later matches.
// Only provable cases count: regexes are compared only against "/**".
func (cr *compiledRule) shadows(later *compiledRule) bool {
	if cr.re != nil || !methodsCover(cr.methods, later.methods) || !netsCover(cr.nets, later.nets) {
		return false
	}
	if later.re != nil {
		return cr.tail && len(cr.glob) == 0 // "/**"
	}
	if cr.tail {
		if len(later.glob) < len(cr.glob) {
			return false
		}
	} else if later.tail || len(later.glob) != len(cr.glob) {
		return false
	}
	for i, pat := range cr.glob {
		if !segmentCovers(pat, later.glob[i]) {
			return false
		}
	}
	return true
}

// segmentCovers reports whether the segment pattern pat matches every
// segment the pattern seg does.
func segmentCovers(pat, seg string) bool {
	switch {
	case pat == seg, pat == "*": // "*" takes any non-empty segment; seg never matches an empty one
		return true
	case strings.Contains(seg, "*"):
		return false // wildcard inclusion: not worth proving
	}
	return segmentMatch(pat, seg)
}

// methodsCover: every method later accepts, earlier accepts too.
func methodsCover(earlier, later []string) bool {
	if len(earlier) == 0 {
		return true
	}
	if len(later) == 0 {
		return false
	}
	for _, m := range later {
		if !slices.Contains(earlier, m) {
			return false
		}
	}
	return true
}

// netsCover: every address later accepts, earlier accepts too.
func netsCover(earlier, later []netip.Prefix) bool {
	if len(earlier) == 0 {
		return true
	}
	if len(later) == 0 {
		return false // later also takes unknown addresses and everything outside
	}
	for _, l := range later {
		if !slices.ContainsFunc(earlier, func(e netip.Prefix) bool {
			return e.Bits() <= l.Bits() && e.Contains(l.Addr())
		}) {
			return false
		}
	}
	return true
}
