package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// BenchmarkSignedInRequestWithMetrics is BenchmarkSignedInRequest with
// Prometheus counting every request: the allocations per request must be
// the same.
func BenchmarkSignedInRequestWithMetrics(b *testing.B) {
	gw, r, _ := signedInGateway(b, true)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		gw.ServeHTTP(w, r)
	}
}

// TestMetricsAddNoAllocations: counting a signed-in request (labels
// resolved at config load, a histogram observation) allocates nothing.
func TestMetricsAddNoAllocations(t *testing.T) {
	allocs := func(withMetrics bool) float64 {
		gw, r, m := signedInGateway(t, withMetrics)
		w := &discardWriter{h: http.Header{}}
		n := testing.AllocsPerRun(200, func() {
			clear(w.h)
			gw.ServeHTTP(w, r)
		})
		if m != nil {
			if got := counterValue(t, gather(t, m), "gatehouse_requests_total", "app", "app.example.com", "outcome", "allowed"); got < 200 {
				t.Errorf("requests counted: %v, want at least 200", got)
			}
		}
		return n
	}
	without, with := allocs(false), allocs(true)
	if with > without {
		t.Errorf("allocations per signed-in request: %v with metrics, %v without", with, without)
	}
}

// gather reads m's registry as a scrape would.
func gather(t *testing.T, m *metrics) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// scrape fetches and parses the text exposition at url.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", url, err)
	}
	return mfs
}

// sample finds the series of family name whose labels include labels
// (name, value pairs); nil when there is none.
func sample(mfs map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	mf := mfs[name]
	if mf == nil {
		return nil
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return m
	}
	return nil
}

func counterValue(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	m := sample(mfs, name, labels...)
	if m == nil {
		t.Errorf("no series %s%q", name, labels)
		return -1
	}
	return m.GetCounter().GetValue()
}

func gaugeValue(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	m := sample(mfs, name, labels...)
	if m == nil {
		t.Errorf("no series %s%q", name, labels)
		return -1
	}
	return m.GetGauge().GetValue()
}

const metricsApps = `metrics: { listen: "127.0.0.1:0" }
apps:
  - host: localhost
    upstream: echo
    rules:
      - { path: /public/**, allow: public }
      - { path: /secret/**, deny: true }
      - { path: /**, allow: authenticated }
  - host: down.localhost
    upstream: http://127.0.0.1:1
    rules:
      - { path: /**, allow: public }
`

// TestMetricsEndToEnd: a real gateway with metrics on; requests of every
// kind through the public listener move exactly the counters they should,
// the exposition is served on the metrics listener only, and no label
// carries a user name, a path or a client address.
func TestMetricsEndToEnd(t *testing.T) {
	const password = "metrics-admin-password"
	t.Setenv("GATEHOUSE_ADMIN_PASSWORD", password)
	dir := t.TempDir()
	file := writeE2EConfig(t, dir, metricsApps)
	g := startGateway(t, file)
	if g.srv.metln == nil {
		t.Fatal("no metrics listener")
	}
	metricsURL := "http://" + g.srv.metln.Addr().String()

	// Nothing happened yet: every app's series exist at 0, as do the
	// sign-in results; none that cannot happen (an app's misdirected request).
	mfs := scrape(t, metricsURL+"/metrics")
	for _, s := range [][2]string{{"localhost", "allowed"}, {"down.localhost", "error"}, {"unknown", "misdirected"}, {"unknown", "bad_request"}} {
		if v := counterValue(t, mfs, "gatehouse_requests_total", "app", s[0], "outcome", s[1]); v != 0 {
			t.Errorf("%s before any request: %v", s, v)
		}
	}
	for _, s := range [][2]string{{"localhost", "misdirected"}, {"localhost", "bad_request"}, {"unknown", "allowed"}} {
		if sample(mfs, "gatehouse_requests_total", "app", s[0], "outcome", s[1]) != nil {
			t.Errorf("a series for %s, which cannot happen", s)
		}
	}
	if sample(mfs, "gatehouse_upstream_errors_total", "app", "unknown") != nil {
		t.Error("upstream errors of the unknown app, which cannot happen")
	}
	if v := counterValue(t, mfs, "gatehouse_signins_total", "result", "locked_out"); v != 0 {
		t.Errorf("locked_out before any sign-in: %v", v)
	}

	anon, user := g.client(), g.client()
	check := func(c *http.Client, host, target string, want int, headers ...string) string {
		t.Helper()
		req, err := http.NewRequest("GET", g.https+target, nil)
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("GET %s (Host %q): %d, want %d", target, host, resp.StatusCode, want)
		}
		return string(body)
	}
	check(anon, "", "/public/a.css", 200)
	check(anon, "", "/hello", 401, "Accept", "application/json")
	if resp, _ := g.signIn(t, anon, "admin", "wrong-password", "/"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	if resp, _ := g.signIn(t, user, "admin", password, "/hello"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	check(user, "", "/hello?token=s3cret", 200)
	check(user, "", "/secret/plans", 403, "Accept", "application/json")
	check(anon, "", "/a%2fb", 400)
	check(anon, "nope.example", "/hello", 421)
	check(anon, "down.localhost", "/x", 502)
	// /metrics on the public listeners is an app's path like any other, or 421.
	for _, body := range []string{
		check(user, "", "/metrics", 200),
		check(anon, "", "/metrics", 401, "Accept", "application/json"),
		check(anon, "nope.example", "/metrics", 421),
		check(anon, "", "/.gatehouse/metrics", 404),
	} {
		if strings.Contains(body, "gatehouse_requests_total") {
			t.Errorf("the public listener served metrics:\n%s", body)
		}
	}
	resp, body := do(t, anon, "GET", g.http+"/metrics", nil)
	if resp.StatusCode != http.StatusPermanentRedirect || strings.Contains(body, "gatehouse_") {
		t.Errorf("plain HTTP /metrics: %d\n%s", resp.StatusCode, body)
	}

	mfs = scrape(t, metricsURL+"/metrics")
	for _, tc := range []struct {
		app, outcome string
		want         float64
	}{
		{"localhost", "allowed", 3},      // /public/a.css, /hello, /metrics (the echo app's)
		{"localhost", "login", 2},        // /hello, /metrics without a session
		{"localhost", "denied", 1},       // /secret/plans
		{"localhost", "gateway_page", 5}, // two sign-in pages, two posts, /.gatehouse/metrics
		{"localhost", "error", 0},
		{"unknown", "bad_request", 1},
		{"unknown", "misdirected", 2},
		{"down.localhost", "allowed", 1},
		{"down.localhost", "denied", 0},
	} {
		if got := counterValue(t, mfs, "gatehouse_requests_total", "app", tc.app, "outcome", tc.outcome); got != tc.want {
			t.Errorf("requests{app=%q,outcome=%q} = %v, want %v", tc.app, tc.outcome, got, tc.want)
		}
	}
	if got := counterValue(t, mfs, "gatehouse_upstream_errors_total", "app", "down.localhost"); got != 1 {
		t.Errorf("upstream errors of down.localhost = %v, want 1", got)
	}
	if got := counterValue(t, mfs, "gatehouse_upstream_errors_total", "app", "localhost"); got != 0 {
		t.Errorf("upstream errors of localhost = %v, want 0", got)
	}
	if h := sample(mfs, "gatehouse_request_duration_seconds", "outcome", "allowed"); h == nil || h.GetHistogram().GetSampleCount() != 4 {
		t.Errorf("duration histogram of allowed requests: %v, want 4 observations", h)
	}
	for result, want := range map[string]float64{"success": 1, "failure": 1, "locked_out": 0, "rate_limited": 0, "busy": 0, "error": 0} {
		if got := counterValue(t, mfs, "gatehouse_signins_total", "result", result); got != want {
			t.Errorf("signins{result=%q} = %v, want %v", result, got, want)
		}
	}
	for name, want := range map[string]float64{"gatehouse_sessions_active": 1, "gatehouse_users": 1, "gatehouse_hashing_in_use": 0, "gatehouse_hashing_queue": 0} {
		if got := gaugeValue(t, mfs, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := gaugeValue(t, mfs, "gatehouse_build_info", "version", versionString()); got != 1 {
		t.Errorf("build_info{version=%q} = %v, want 1", versionString(), got)
	}
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if mfs[name] == nil {
			t.Errorf("no %s: the Go runtime and process collectors are missing", name)
		}
	}

	// Labels come from the config and fixed lists only.
	series := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			series++
			for _, lp := range m.GetLabel() {
				v := lp.GetValue()
				if strings.Contains(v, "admin") || strings.Contains(v, "/") || strings.Contains(v, "127.0.0.1") ||
					strings.Contains(v, "nope") || strings.Contains(v, "hello") || strings.Contains(v, "s3cret") {
					t.Errorf("label %s=%q of %s names a user, a path or a client", lp.GetName(), v, mf.GetName())
				}
			}
		}
	}
	if series > 300 {
		t.Errorf("%d series; the cardinality has grown", series)
	}

	// The metrics listener serves GET /metrics and nothing else.
	for _, tc := range []struct{ method, path string }{{"GET", "/"}, {"GET", "/metrics/x"}, {"POST", "/metrics"}, {"GET", "/.gatehouse/healthz"}} {
		req, _ := http.NewRequest(tc.method, metricsURL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s on the metrics listener: %d, want 404", tc.method, tc.path, resp.StatusCode)
		}
	}
}

// TestMetricsCountReloads: a refused reload and an accepted one are
// counted, and an accepted one brings the new app's series.
func TestMetricsCountReloads(t *testing.T) {
	dir := t.TempDir()
	file := writeE2EConfig(t, dir, metricsApps)
	g := startGateway(t, file)
	url := "http://" + g.srv.metln.Addr().String() + "/metrics"
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// The file watcher may reload too: wait for at least one of each.
	waitFor := func(result string) map[string]*dto.MetricFamily {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mfs := scrape(t, url)
			if counterValue(t, mfs, "gatehouse_config_reloads_total", "result", result) >= 1 {
				return mfs
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s reload counted", result)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := os.WriteFile(file, append(good, "    bogus: 1\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	g.srv.reload()
	waitFor("refused")
	more := strings.Replace(string(good), "  - host: down.localhost", "  - host: new.localhost\n    upstream: echo\n  - host: down.localhost", 1)
	if err := os.WriteFile(file, []byte(more), 0o600); err != nil {
		t.Fatal(err)
	}
	g.srv.reload()
	mfs := waitFor("ok")
	if sample(mfs, "gatehouse_requests_total", "app", "new.localhost", "outcome", "allowed") == nil {
		t.Error("no series for the app the reload added")
	}
}

// TestMetricsListenConfig: off by default; a loopback address is quiet,
// any other one warns, a public port is refused.
func TestMetricsListenConfig(t *testing.T) {
	const apps = "apps:\n  - host: localhost\n    upstream: echo\n"
	const warning = "is not a loopback address: metrics are unauthenticated; keep this address private"
	cfg, err := loadConfig(writeConfig(t, apps))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MetricsAddr != "" {
		t.Errorf("metrics on by default at %q", cfg.MetricsAddr)
	}
	for _, tc := range []struct {
		listen string
		warn   bool
	}{
		{"127.0.0.1:9464", false},
		{"localhost:9464", false},
		{"[::1]:9464", false},
		{"127.0.0.2:0", false},
		{":9464", true},
		{"0.0.0.0:9464", true},
		{"[::]:9464", true},
		{"10.0.0.5:9464", true},
		{"metrics.internal:9464", true},
	} {
		t.Run(tc.listen, func(t *testing.T) {
			f := writeConfig(t, fmt.Sprintf("metrics:\n  listen: %q\n%s", tc.listen, apps))
			cfg, err := loadConfig(f)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MetricsAddr != tc.listen {
				t.Errorf("MetricsAddr = %q, want %q", cfg.MetricsAddr, tc.listen)
			}
			warned := false
			for _, w := range cfg.Warnings {
				warned = warned || (strings.Contains(w.Msg, warning) && w.Line == 2 && w.File == f)
			}
			if warned != tc.warn {
				t.Errorf("warned %v (%v), want %v", warned, cfg.Warnings, tc.warn)
			}
		})
	}
	for _, tc := range []struct{ yaml, want string }{
		{"metrics: { listen: \"9464\" }\n", `:1: metrics.listen: "9464" is not host:port (e.g. "127.0.0.1:9464")`},
		{"metrics: { listen: \"127.0.0.1:8443\" }\n", `:1: metrics.listen: "127.0.0.1:8443" shares port 8443 with listen.https: metrics are never served on a public listener`},
		{"listen: { http: \":80\" }\nmetrics: { listen: \"127.0.0.1:80\" }\n", `:2: metrics.listen: "127.0.0.1:80" shares port 80 with listen.http`},
		{"metrics: { address: \"127.0.0.1:9464\" }\n", `:1: unknown key "address" in metrics (known keys: listen)`},
	} {
		_, err := loadConfig(writeConfig(t, tc.yaml+apps))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v\nwant it to contain %q", strings.TrimSpace(tc.yaml), err, tc.want)
		}
	}
	// With tls.mode off there is no HTTPS listener: its port is free.
	if _, err := loadConfig(writeConfig(t, "tls: { mode: off }\nmetrics: { listen: \"127.0.0.1:8443\" }\n"+apps)); err != nil {
		t.Errorf("tls off, metrics on the unused HTTPS port: %v", err)
	}
}

// TestMetricsListenerInUse: a taken port fails start-up in one line, like
// the public listeners.
func TestMetricsListenerInUse(t *testing.T) {
	dir := t.TempDir()
	g := startGateway(t, writeE2EConfig(t, dir, metricsApps))
	taken := g.srv.metln.Addr().String()
	other := t.TempDir()
	cfg, err := loadConfig(writeE2EConfig(t, other, strings.Replace(metricsApps, "127.0.0.1:0", taken, 1)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = newServer(cfg, newLogger(io.Discard, 0), nil, time.Now)
	want := "metrics.listen: " + taken + " is already in use by another program"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

// TestMetricsOffByDefault: no metrics listener, no Prometheus anywhere.
func TestMetricsOffByDefault(t *testing.T) {
	g := startGateway(t, writeE2EConfig(t, t.TempDir(), ""))
	if g.srv.metln != nil || g.srv.metrics != nil {
		t.Error("a metrics listener without metrics.listen")
	}
	deadline := time.Now().Add(10 * time.Second)
	lines := g.logs.logLines(t, "gatehouse ready")
	for len(lines) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		lines = g.logs.logLines(t, "gatehouse ready")
	}
	if len(lines) != 1 || lines[0]["metrics"] != nil {
		t.Errorf("ready line: %v", lines)
	}
}
