package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/pebbletest"
	"github.com/gatehouse-auth/gatehouse/policy"
)

type syncWriter = pebbletest.Buffer

// handshake connects to addr with SNI name and returns the leaf, verified
// against roots.
func handshake(addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// TestACMEAgainstPebble obtains a certificate through a real ACME
// challenge, serves it, checks the chain against Pebble's root, renews it,
// and refuses names no app allows.
func TestACMEAgainstPebble(t *testing.T) {
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpPort, httpsPort := httpLn.Addr().(*net.TCPAddr).Port, httpsLn.Addr().(*net.TCPAddr).Port
	peb := pebbletest.Start(t, httpPort, httpsPort)

	p, err := policy.Compile([]policy.App{
		{Host: "localhost", Rules: []policy.Rule{{Path: "/**", Allow: policy.AllowPublic}}},
		{Host: "*.apps.localhost", Rules: []policy.Rule{{Path: "/**", Allow: policy.AllowPublic}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "app") }))
	defer up.Close()
	logs := &syncWriter{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	g, err := New(Config{Policy: p, Apps: []App{{Upstream: up.URL}, {Upstream: up.URL}}, Headers: DefaultHeaders},
		Deps{Auth: &fakeAuth{}, Pages: fakePages{}, UI: http.NotFoundHandler(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	dir := t.TempDir()
	certs, err := NewCerts(TLSConfig{
		Mode: TLSACME, Dir: dir, Hosts: []string{"localhost", "*.apps.localhost"},
		Email: "ops@example.com", CA: peb.Dir, CARoots: peb.Minica,
		HTTPPort: httpPort, HTTPSPort: httpsPort,
		RenewCheckInterval: time.Second,
		// As the gateway decides for a wildcard app: one more label.
		OnDemandAllowed: func(name string) bool {
			label, ok := strings.CutSuffix(name, ".apps.localhost")
			return ok && label != "" && !strings.Contains(label, ".")
		},
	}, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer certs.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, g, certs, Listeners{HTTPS: httpsLn, HTTP: httpLn}, 5*time.Second, log) }()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-done
		}
	}()

	roots := peb.Root(t)
	addr := fmt.Sprintf("127.0.0.1:%d", httpsPort)
	var leaf *x509.Certificate
	deadline := time.Now().Add(60 * time.Second)
	for {
		if leaf, err = handshake(addr, "localhost", roots); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate from pebble: %v\nlogs:\n%s", err, logs.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
	if leaf.Subject.CommonName != "localhost" && (len(leaf.DNSNames) == 0 || leaf.DNSNames[0] != "localhost") {
		t.Errorf("certificate for %v %v", leaf.Subject, leaf.DNSNames)
	}
	// The gateway serves over it, with HTTP/2.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := client.Get(fmt.Sprintf("https://localhost:%d/x", httpsPort))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Errorf("over the ACME certificate: %d %s", resp.StatusCode, resp.Proto)
	}
	// Plain HTTP redirects (challenges aside).
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.Get(fmt.Sprintf("http://localhost:%d/a?b=c", httpPort))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != fmt.Sprintf("https://localhost:%d/a?b=c", httpsPort) {
		t.Errorf("HTTP: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/a", httpPort), nil)
	req.Host = "evil.example"
	if resp, err = noRedirect.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("HTTP for an unknown host: %d, want 421", resp.StatusCode)
	}

	// Pebble issues 20-second certificates here, so the background
	// maintenance renews within the last third of that through a new
	// challenge, and the listener serves the new certificate.
	deadline = time.Now().Add(60 * time.Second)
	for {
		renewed, err := handshake(addr, "localhost", roots)
		if err == nil && renewed.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the certificate was not renewed: %v\nlogs:\n%s", err, logs.String())
		}
		time.Sleep(500 * time.Millisecond)
	}

	// Names no app allows are refused at the handshake, and never reach the CA.
	if _, err := handshake(addr, "evil.example", roots); err == nil {
		t.Error("a handshake for an unconfigured name succeeded")
	}
	if _, err := handshake(addr, "a.b.apps.localhost", roots); err == nil {
		t.Error("a handshake for a name the decision refused succeeded")
	}
	// A name a wildcard app allows gets its certificate at the handshake.
	if leaf, err := handshake(addr, "team.apps.localhost", roots); err != nil {
		t.Errorf("on-demand certificate for a wildcard app: %v", err)
	} else if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "team.apps.localhost" {
		t.Errorf("on-demand certificate for %v", leaf.DNSNames)
	}
	for _, name := range []string{"evil.example", "a.b.apps.localhost"} {
		if strings.Contains(peb.Logs.String(), name) {
			t.Errorf("the CA was asked about %s, which no app allows", name)
		}
	}

	// A reload that adds a host obtains its certificate; one that drops a
	// host stops serving it.
	certs.SetHosts([]string{"added.localhost", "*.apps.localhost"})
	waitForCert(t, addr, "added.localhost", roots, logs)
	if _, err := handshake(addr, "localhost", roots); err == nil {
		t.Error("a host the reload removed is still served")
	}

	// A restart while the CA is unreachable still serves the stored
	// certificate; a host without one is logged clearly and retried.
	cancel()
	<-done
	stopped = true
	peb.Stop()
	logs2 := &syncWriter{}
	certs2, err := NewCerts(TLSConfig{
		Mode: TLSACME, Dir: dir, Hosts: []string{"added.localhost", "fresh.localhost"},
		CA: peb.Dir, CARoots: peb.Minica,
		HTTPPort: httpPort, HTTPSPort: httpsPort, RenewCheckInterval: time.Second,
	}, slog.New(slog.NewJSONHandler(logs2, nil)), nil)
	if err != nil {
		t.Fatalf("start with the CA down: %v", err)
	}
	defer certs2.Close()
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() { done2 <- Serve(ctx2, g, certs2, Listeners{HTTPS: ln2}, 5*time.Second, log) }()
	defer func() { cancel2(); <-done2 }()
	waitForCert(t, addr, "added.localhost", roots, logs2)
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(logs2.String(), `"level":"ERROR","msg":"tls: will retry"`) || !strings.Contains(logs2.String(), "connection refused") {
		if time.Now().After(deadline) {
			t.Fatalf("no clear error about the unreachable CA:\n%s", logs2.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitForCert waits until addr serves name a certificate that verifies
// against roots.
func waitForCert(t *testing.T, addr, name string, roots *x509.CertPool, logs *syncWriter) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := handshake(addr, name, roots)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate for %s: %v\nlogs:\n%s", name, err, logs.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
}
