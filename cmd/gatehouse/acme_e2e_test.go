package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/pebbletest"
)

// TestWholeGatewayWithACME runs the whole gateway with tls.mode acme
// against a real ACME CA (Pebble). At start-up it obtains a certificate
// for its app host through a real HTTP-01 challenge on its own HTTP
// listener. The certificate verifies against the CA's root, a browser
// signs in over it and reaches the app, the HTTP listener redirects to
// HTTPS, and the certificate is kept in data_dir for the next start.
func TestWholeGatewayWithACME(t *testing.T) {
	const host = "gatehouse.test" // Pebble's DNS answers 127.0.0.1 for every name
	httpPort, httpsPort := pebbletest.FreePort(t), pebbletest.FreePort(t)
	ca := pebbletest.Start(t, httpPort, httpsPort)
	dir := t.TempDir()
	root := filepath.Join(dir, "pebble-minica.pem")
	if err := os.WriteFile(root, ca.Minica, 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "config.yaml")
	config := fmt.Sprintf(`listen: { https: "127.0.0.1:%d", http: "127.0.0.1:%d" }
tls:
  mode: acme
  email: ops@example.com
  ca: %s
  ca_root: %s
data_dir: %s
apps:
  - host: %s
    upstream: echo
%s`, httpsPort, httpPort, ca.Dir, root, filepath.Join(dir, "data"), host, e2eRules)
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GATEHOUSE_ADMIN_PASSWORD", "acme-e2e-password-1")
	g := startGateway(t, file)
	g.https = fmt.Sprintf("https://%s:%d", host, httpsPort)

	// A browser that resolves the app host to this machine and trusts only
	// the CA's root.
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{
		Jar:     jar,
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: ca.Root(t)},
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				_, port, _ := net.SplitHostPort(addr)
				return dialer.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	var leaf *x509.Certificate
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := c.Get(g.https + "/.gatehouse/healthz")
		if err == nil {
			resp.Body.Close()
			leaf = resp.TLS.PeerCertificates[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no trusted certificate after 60s: %v\ngateway log:\n%s", err, g.logs.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != host {
		t.Errorf("certificate names %v, want [%s]", leaf.DNSNames, host)
	}
	if !strings.Contains(ca.Logs.String(), host) {
		t.Error("Pebble's log shows no order for the app host")
	}

	// Sign in through the page served over that certificate and reach the app.
	resp, _ := g.signIn(t, c, "admin", "acme-e2e-password-1", "/hello")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/hello" {
		t.Fatalf("sign-in: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := do(t, c, "GET", g.https+"/hello", nil, "Accept", "text/html")
	if resp.StatusCode != 200 || !strings.Contains(body, "Remote-User") || !strings.Contains(body, "admin") {
		t.Fatalf("echo app: %d\n%s", resp.StatusCode, body)
	}
	if hsts := resp.Header.Get("Strict-Transport-Security"); hsts != "" {
		t.Errorf("the app's response gained HSTS %q: only the gateway's own pages carry it", hsts)
	}
	if resp, _ := do(t, c, "GET", g.https+"/.gatehouse/login", nil); !strings.HasPrefix(resp.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Errorf("the gateway's page has no HSTS with acme: %q", resp.Header.Get("Strict-Transport-Security"))
	}

	// The HTTP listener answers challenges and sends everyone else to HTTPS.
	resp, _ = do(t, c, "GET", fmt.Sprintf("http://%s:%d/reports?q=1", host, httpPort), nil)
	if want := fmt.Sprintf("https://%s:%d/reports?q=1", host, httpsPort); resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("http: %d to %q, want 308 to %s", resp.StatusCode, resp.Header.Get("Location"), want)
	}

	// The certificate and key are in data_dir, for the next start.
	var stored []string
	_ = filepath.WalkDir(filepath.Join(dir, "data", "tls", "acme"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(path, host) {
			stored = append(stored, filepath.Base(path))
		}
		return nil
	})
	if len(stored) < 2 {
		t.Errorf("stored for %s: %v, want its certificate and key", host, stored)
	}
}
