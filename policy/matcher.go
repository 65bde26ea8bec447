package policy

import (
	"math"
	"net/netip"
	"strings"
)

// appMatcher finds the first matching rule of one app without trying
// every rule: glob rules live in a trie of path segments, so a lookup
// visits only the branches the path can take, and skips a branch whose
// rules all come after the best match found so far; regex rules are tried
// only while they could still beat the best glob match.
type appMatcher struct {
	rules []*compiledRule // all, in order
	root  *node
	regex []*compiledRule // in order
}

// node is a trie node: the rules whose pattern ends here, the rules whose
// pattern ends in "**" here, and the edges for the next segment.
type node struct {
	min   int             // lowest rule index in this subtree
	exact []*compiledRule // pattern ends at this node
	tail  []*compiledRule // pattern is this node + "**"
	lit   map[string]*node
	star  *node      // a "*" segment
	wild  []wildEdge // segments with "*" inside, like "*.css"
}

type wildEdge struct {
	pat  string
	next *node
}

func newMatcher() *appMatcher { return &appMatcher{root: newNode()} }

func newNode() *node { return &node{min: math.MaxInt} }

// add appends a rule; rules must be added in order.
func (m *appMatcher) add(cr *compiledRule) {
	m.rules = append(m.rules, cr)
	if cr.re != nil {
		m.regex = append(m.regex, cr)
		return
	}
	n := m.root
	n.min = min(n.min, cr.index)
	for _, seg := range cr.glob {
		switch {
		case seg == "*":
			if n.star == nil {
				n.star = newNode()
			}
			n = n.star
		case strings.Contains(seg, "*"):
			var next *node
			for _, w := range n.wild {
				if w.pat == seg {
					next = w.next
				}
			}
			if next == nil {
				next = newNode()
				n.wild = append(n.wild, wildEdge{seg, next})
			}
			n = next
		default:
			if n.lit == nil {
				n.lit = map[string]*node{}
			}
			next := n.lit[seg]
			if next == nil {
				next = newNode()
				n.lit[seg] = next
			}
			n = next
		}
		n.min = min(n.min, cr.index)
	}
	if cr.tail {
		n.tail = append(n.tail, cr)
	} else {
		n.exact = append(n.exact, cr)
	}
}

// match returns the first rule (lowest index) whose path, method and
// network match, or nil. path is canonical (lower-cased for
// case_insensitive_paths); a trailing slash is ignored. It does not
// allocate.
func (m *appMatcher) match(path, method string, ip netip.Addr) *compiledRule {
	p := strings.Trim(path, "/")
	var best *compiledRule
	m.walk(m.root, p, p == "", method, ip, &best)
	for _, cr := range m.regex {
		if best != nil && cr.index > best.index {
			break
		}
		if cr.regexOK(path) && cr.methodOK(method) && cr.netOK(ip) {
			best = cr
			break
		}
	}
	return best
}

// consider makes the first acceptable rule of list the best if it is
// earlier than the current best. Lists are in rule order.
func consider(list []*compiledRule, method string, ip netip.Addr, best **compiledRule) {
	for _, cr := range list {
		if *best != nil && cr.index > (*best).index {
			return
		}
		if cr.methodOK(method) && cr.netOK(ip) {
			*best = cr
			return
		}
	}
}

// walk matches the remaining path rest (segments without leading or
// trailing slash; done when none remain) from node n.
func (m *appMatcher) walk(n *node, rest string, done bool, method string, ip netip.Addr, best **compiledRule) {
	if *best != nil && n.min > (*best).index {
		return
	}
	consider(n.tail, method, ip, best)
	if done {
		consider(n.exact, method, ip, best)
		return
	}
	seg, after, more := strings.Cut(rest, "/")
	if next := n.lit[seg]; next != nil {
		m.walk(next, after, !more, method, ip, best)
	}
	if n.star != nil && seg != "" {
		m.walk(n.star, after, !more, method, ip, best)
	}
	for _, w := range n.wild {
		if segmentMatch(w.pat, seg) {
			m.walk(w.next, after, !more, method, ip, best)
		}
	}
}

// segmentMatch matches one segment against a pattern whose only wildcard
// is "*" (any run of characters, "/" excepted since s is one segment),
// without allocating. A lone "*" needs a non-empty segment.
func segmentMatch(pat, s string) bool {
	if pat == "*" {
		return s != ""
	}
	// Classic greedy glob with one backtrack point.
	px, sx := 0, 0
	starPx, starSx := -1, 0
	for sx < len(s) {
		switch {
		case px < len(pat) && pat[px] == '*':
			starPx, starSx = px, sx
			px++
		case px < len(pat) && pat[px] == s[sx]:
			px++
			sx++
		case starPx >= 0:
			starSx++
			px, sx = starPx+1, starSx
		default:
			return false
		}
	}
	for px < len(pat) && pat[px] == '*' {
		px++
	}
	return px == len(pat)
}
