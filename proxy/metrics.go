package proxy

import (
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/policy"
)

// Metrics counts requests for monitoring; cmd implements it (with
// Prometheus). Its methods are called on every request, so they must be
// cheap and safe for concurrent use. Every argument comes from the config
// or from the constants below, never from the request: label values stay few.
type Metrics interface {
	// Request is called once per request, after the answer, next to the
	// access log line. app is the host pattern of the app that serves the
	// request's host as configured ("" when none does), outcome one of the
	// Outcome constants, d the time from the request to the end of the answer.
	Request(app, outcome string, d time.Duration)
	// UpstreamError is called when the gateway answered an allowed request
	// with 502 or 504 because the app could not be reached or was too slow
	// (a 502 the app sent itself is the app's answer, not counted here).
	UpstreamError(app string)
}

// Outcomes of a request, as Metrics.Request reports them.
const (
	OutcomeAllowed     = "allowed"      // the policy allowed it and it went to the app
	OutcomeDenied      = "denied"       // 403: a rule (or no rule) refused the caller
	OutcomeLogin       = "login"        // anonymous where a rule needs an identity: 302 to sign-in or 401
	OutcomeBadRequest  = "bad_request"  // 400: a target the gateway refuses to interpret
	OutcomeMisdirected = "misdirected"  // 421: no app serves the host
	OutcomeGatewayPage = "gateway_page" // the gateway's own pages under Prefix, and healthz
	OutcomeError       = "error"        // 500: the gateway failed (the store, a page) and failed closed
)

// Outcomes lists every outcome, for implementations that prepare their
// counters in advance.
var Outcomes = []string{OutcomeAllowed, OutcomeDenied, OutcomeLogin, OutcomeBadRequest, OutcomeMisdirected, OutcomeGatewayPage, OutcomeError}

// observe reports a finished request to the Metrics. It reads back what
// serve decided from info and the answer's status, under the same state,
// so it needs no bookkeeping on the request path and does not allocate.
func (g *Gateway) observe(st *state, r *http.Request, info *reqInfo, status int, d time.Duration) {
	app, outcome := classify(st, r, info, status)
	g.deps.Metrics.Request(app, outcome, d)
	if outcome == OutcomeAllowed && info.upstreamFailed {
		g.deps.Metrics.UpstreamError(app)
	}
}

// classify mirrors the branches of serve: which app, and which kind of
// answer. A decision that names a rule was taken by Decide for the app
// Lookup found (the same policy answers both), so the usual request needs
// no second lookup.
func classify(st *state, r *http.Request, info *reqInfo, status int) (app, outcome string) {
	t := info.target
	if t.Path == "" { // ParseTarget refused it; a parsed path always starts with "/"
		return "", OutcomeBadRequest
	}
	apps := st.policy.Apps()
	d := info.decision
	if d.Rule != nil && d.App >= 0 && d.App < len(apps) {
		return apps[d.App].Host, decided(d, info, status)
	}
	i, ok := st.policy.Lookup(r.Host)
	if ok {
		app = apps[i].Host
	}
	switch {
	case t.Path == Prefix+"healthz": // answered on any host
		return app, OutcomeGatewayPage
	case !ok:
		return "", OutcomeMisdirected
	case strings.HasPrefix(t.Path, Prefix) || t.Path == strings.TrimSuffix(Prefix, "/"):
		return app, OutcomeGatewayPage
	case status == http.StatusInternalServerError || d.App != i:
		// Authenticate failed before any decision, or the decision was
		// for another app: serve failed closed.
		return app, OutcomeError
	}
	return app, decided(d, info, status)
}

// decided is the outcome of a request that Decide ruled on.
func decided(d policy.Decision, info *reqInfo, status int) string {
	switch {
	case d.Action == policy.Allow:
		return OutcomeAllowed
	case d.Action == policy.Login && info.user == nil:
		return OutcomeLogin
	case status == http.StatusInternalServerError:
		return OutcomeError // the 403 page could not be rendered
	}
	return OutcomeDenied
}
