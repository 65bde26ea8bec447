// Package pebbletest runs a real ACME CA, letsencrypt/pebble (a tool in
// go.mod), for tests that obtain certificates: the proxy's certificate
// manager and the whole gateway.
package pebbletest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// FreePort returns a loopback port nobody listens on right now.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// CA is a real ACME CA (letsencrypt/pebble, a tool in go.mod) on
// loopback only, validating challenges against the given gateway ports.
type CA struct {
	Dir    string // ACME directory URL
	Minica []byte // root of Pebble's own HTTPS certificate (for tls.ca_root)
	Mgmt   string // management API base URL
	Client *http.Client
	Logs   *Buffer // Pebble's own log: every order it received
	Stop   func()  // takes the CA down
}

// Start runs Pebble until the test ends. Every name resolves to
// 127.0.0.1, where Pebble validates HTTP-01 on httpPort and TLS-ALPN-01
// on tlsPort.
func Start(t testing.TB, httpPort, tlsPort int) *CA {
	t.Helper()
	// go mod download fetches the module (for its test certificates) when
	// this machine has not yet, and says where it is.
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/letsencrypt/pebble/v2").Output()
	if err != nil {
		t.Fatalf("locating pebble: %v", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("locating pebble: %v %s", err, out)
	}
	src := mod.Dir
	listen, mgmt := FreePort(t), FreePort(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           fmt.Sprintf("127.0.0.1:%d", listen),
		"managementListenAddress": fmt.Sprintf("127.0.0.1:%d", mgmt),
		"certificate":             filepath.Join(src, "test/certs/localhost/cert.pem"),
		"privateKey":              filepath.Join(src, "test/certs/localhost/key.pem"),
		"httpPort":                httpPort,
		"tlsPort":                 tlsPort,
		"ocspResponderURL":        "",
		"retryAfter":              map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":            "ecdsa",
		"profiles":                map[string]any{"default": map[string]any{"description": "test", "validityPeriod": 20}},
	}}
	data, _ := json.Marshal(cfg)
	file := filepath.Join(t.TempDir(), "pebble.json")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// Names resolve through pebble-challtestsrv's DNS server, which
	// answers 127.0.0.1 for every name (IPv6 off: the gateway listens on
	// IPv4 loopback only), so wildcard app hosts can be validated too.
	dns := FreePort(t)
	_, _ = runTool(t, "pebble-challtestsrv", nil, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dns),
		"-management", fmt.Sprintf("127.0.0.1:%d", FreePort(t)), "-defaultIPv6", "",
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
	logs, stop := runTool(t, "pebble", []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"},
		"-config", file, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dns))
	minica, err := os.ReadFile(filepath.Join(src, "test/certs/pebble.minica.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(minica)
	p := &CA{
		Dir:    fmt.Sprintf("https://127.0.0.1:%d/dir", listen),
		Minica: minica,
		Mgmt:   fmt.Sprintf("https://127.0.0.1:%d", mgmt),
		Client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
		Logs:   logs,
		Stop:   stop,
	}
	deadline := time.Now().Add(120 * time.Second) // the first run compiles pebble
	for {
		resp, err := p.Client.Get(p.Dir)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not come up: %v\n%s", err, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// runTool runs a tool of go.mod (go tool -n builds it when needed and
// prints the binary's path; running the binary itself, not "go tool",
// lets the test stop it) until the test ends, and returns its output.
func runTool(t testing.TB, name string, env []string, args ...string) (logs *Buffer, stop func()) {
	t.Helper()
	bin, err := exec.Command("go", "tool", "-n", name).Output()
	if err != nil {
		t.Fatalf("building %s: %v", name, err)
	}
	cmd := exec.Command(strings.TrimSpace(string(bin)), args...)
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(), env...)
	logs = &Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, logs.String())
		}
	})
	return logs, stop
}

// Root returns the root that Pebble signs issued chains with.
func (p *CA) Root(t testing.TB) *x509.CertPool {
	t.Helper()
	resp, err := p.Client.Get(p.Mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	pem, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no root from pebble: %q", pem)
	}
	return pool
}

// Buffer is a goroutine-safe buffer for process and log output.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *Buffer) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *Buffer) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
