package main

import (
	"errors"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gatehouse-auth/gatehouse/loginui"
	"github.com/gatehouse-auth/gatehouse/policy"
	"github.com/gatehouse-auth/gatehouse/proxy"
	"github.com/gatehouse-auth/gatehouse/store"
)

// unknownApp is the app label of requests for a host no app serves, and
// of those refused before their host was looked at.
const unknownApp = "unknown"

// metrics is the gateway's Prometheus instrumentation (SPEC §10): a
// registry of its own, never the global default one, served only on
// metrics.listen. It implements proxy.Metrics and loginui.Metrics.
//
// Label values come from the config (app host patterns) and from fixed
// lists (outcomes, sign-in results): never a user name, a path or a
// client address, so the number of series stays small whatever clients send.
type metrics struct {
	reg            *prometheus.Registry
	log            *slog.Logger
	requests       *prometheus.CounterVec // app, outcome
	upstreamErrors *prometheus.CounterVec // app
	durations      []prometheus.Observer  // by index in proxy.Outcomes
	signIns        []prometheus.Counter   // by index in loginui.SignInResults
	reloadsOK      prometheus.Counter
	reloadsRefused prometheus.Counter
	// apps holds every configured app's counters, resolved once per config
	// so that counting a request does not allocate.
	apps    atomic.Pointer[map[string]*appMetrics]
	unknown *appMetrics
}

// appMetrics are the counters of one app label.
type appMetrics struct {
	label          string
	requests       []prometheus.Counter // by index in proxy.Outcomes; nil for an outcome the label never has
	upstreamErrors prometheus.Counter   // nil for unknown
}

// Outcomes a configured app has, and those of the unknown app: a host no
// app serves is misdirected, a target refused before the host was looked
// at is a bad request, and healthz answers on any host.
var (
	appOutcomes     = []string{proxy.OutcomeAllowed, proxy.OutcomeDenied, proxy.OutcomeLogin, proxy.OutcomeGatewayPage, proxy.OutcomeError}
	unknownOutcomes = []string{proxy.OutcomeBadRequest, proxy.OutcomeMisdirected, proxy.OutcomeGatewayPage}
)

// requestBuckets span a gateway page (a millisecond) to an app that uses
// the whole default upstream_timeout (60s).
var requestBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// newMetrics builds the registry, with the Go runtime and process
// collectors. watchStore and watchHashing add the gauges read at scrape time.
func newMetrics(version string, log *slog.Logger) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), log: log}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_requests_total",
		Help: "Requests answered on the public listeners, by app (its host as configured, or unknown) and outcome.",
	}, []string{"app", "outcome"})
	durations := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gatehouse_request_duration_seconds",
		Help:    "Time from a request to the end of its answer (the app's time included), by outcome.",
		Buckets: requestBuckets,
	}, []string{"outcome"})
	m.upstreamErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_upstream_errors_total",
		Help: "Allowed requests answered 502 or 504: the app was down, too slow, or said so itself.",
	}, []string{"app"})
	signIns := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_signins_total",
		Help: "Sign-in form submissions, by result.",
	}, []string{"result"})
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_config_reloads_total",
		Help: "Config reloads (SIGHUP or a changed file), by result: ok, or refused (the previous config kept serving).",
	}, []string{"result"})
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gatehouse_build_info",
		Help: "Always 1; the version label is the running gatehouse version.",
	}, []string{"version"})
	m.reg.MustRegister(m.requests, durations, m.upstreamErrors, signIns, reloads, build)

	for _, o := range proxy.Outcomes {
		m.durations = append(m.durations, durations.WithLabelValues(o))
	}
	for _, r := range loginui.SignInResults {
		m.signIns = append(m.signIns, signIns.WithLabelValues(r))
	}
	m.reloadsOK, m.reloadsRefused = reloads.WithLabelValues("ok"), reloads.WithLabelValues("refused")
	build.WithLabelValues(version).Set(1)
	m.unknown = m.newApp(unknownApp, unknownOutcomes)
	m.apps.Store(&map[string]*appMetrics{})
	return m
}

// newApp resolves the series of one app label, so that they exist (at 0)
// from the start and counting needs no lookup by label.
func (m *metrics) newApp(label string, outcomes []string) *appMetrics {
	a := &appMetrics{label: label, requests: make([]prometheus.Counter, len(proxy.Outcomes))}
	for i, o := range proxy.Outcomes {
		if slices.Contains(outcomes, o) {
			a.requests[i] = m.requests.WithLabelValues(label, o)
		}
	}
	if label != unknownApp {
		a.upstreamErrors = m.upstreamErrors.WithLabelValues(label)
	}
	return a
}

// setApps resolves the counters of every app p configures. It runs at
// start-up and after each accepted reload; the series of an app that is
// no longer configured stay, with their last values, until a restart.
func (m *metrics) setApps(p *policy.Policy) {
	apps := map[string]*appMetrics{}
	for _, a := range p.Apps() {
		apps[a.Host] = m.newApp(a.Host, appOutcomes)
	}
	m.apps.Store(&apps)
}

// app returns the counters of the app label host ("" is unknown).
func (m *metrics) app(host string) *appMetrics {
	if a, ok := (*m.apps.Load())[host]; ok {
		return a
	}
	if host == "" {
		return m.unknown
	}
	// A request that began under a config a reload has since replaced.
	return m.newApp(host, appOutcomes)
}

// Request implements proxy.Metrics. It does not allocate.
func (m *metrics) Request(app, outcome string, d time.Duration) {
	i := slices.Index(proxy.Outcomes, outcome)
	if i < 0 {
		i = slices.Index(proxy.Outcomes, proxy.OutcomeError)
	}
	a := m.app(app)
	c := a.requests[i]
	if c == nil { // an outcome this label should not have; count it all the same
		c = m.requests.WithLabelValues(a.label, proxy.Outcomes[i])
	}
	c.Inc()
	m.durations[i].Observe(d.Seconds())
}

// UpstreamError implements proxy.Metrics.
func (m *metrics) UpstreamError(app string) {
	a := m.app(app)
	c := a.upstreamErrors
	if c == nil {
		c = m.upstreamErrors.WithLabelValues(a.label)
	}
	c.Inc()
}

// SignIn implements loginui.Metrics.
func (m *metrics) SignIn(result string) {
	i := slices.Index(loginui.SignInResults, result)
	if i < 0 {
		i = slices.Index(loginui.SignInResults, loginui.SignInError)
	}
	m.signIns[i].Inc()
}

// reloaded counts a config reload.
func (m *metrics) reloaded(ok bool) {
	if ok {
		m.reloadsOK.Inc()
	} else {
		m.reloadsRefused.Inc()
	}
}

// watchStore adds the gauges counted in the store at each scrape.
func (m *metrics) watchStore(db *store.DB) {
	count := func(what string, f func() (int, error)) func() float64 {
		return func() float64 {
			n, err := f()
			if err != nil {
				m.log.Warn("metrics: cannot count "+what, "err", err)
				return math.NaN()
			}
			return float64(n)
		}
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_sessions_active",
			Help: "Sessions in the store (expired ones included until the hourly purge).",
		}, count("sessions", db.CountSessions)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_users",
			Help: "User accounts in the store (disabled and pending ones included).",
		}, count("users", db.CountUsers)),
	)
}

// watchHashing adds the gauges of the password-hashing gate.
func (m *metrics) watchHashing(ui *loginui.UI) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_hashing_in_use",
			Help: "Password hashes running now (at most login.hashing.concurrency).",
		}, func() float64 { n, _ := ui.Hashing(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_hashing_queue",
			Help: "Sign-ins waiting for a hashing slot (at most login.hashing.queue).",
		}, func() float64 { _, n := ui.Hashing(); return float64(n) }),
	)
}

// handler serves GET /metrics and nothing else.
func (m *metrics) handler() http.Handler {
	prom := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			http.NotFound(w, r)
			return
		}
		prom.ServeHTTP(w, r)
	})
}

// serve runs the metrics listener until it is shut down.
func (m *metrics) serve(ln net.Listener) *http.Server {
	srv := &http.Server{
		Handler:           m.handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("metrics listener stopped", "err", err)
		}
	}()
	return srv
}
