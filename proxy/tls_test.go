package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"

	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// serveTLS runs a TLS listener on loopback with certs' configuration and
// returns its address.
func serveTLS(t *testing.T, certs *Certs) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", certs.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = conn.(*tls.Conn).Handshake()
				conn.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// served is the leaf addr serves for name, verified against roots.
func served(t *testing.T, addr, name string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	leaf, err := handshake(addr, name, roots)
	if err != nil {
		t.Fatalf("handshake for %s: %v", name, err)
	}
	return leaf
}

func caPool(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatal("ca.crt holds no certificate")
	}
	return pool
}

// TestSelfSignedCAIsPersistedAndRenewed: a local CA and a leaf for
// localhost and every app host, the CA's path logged, the same CA after a
// restart, a new leaf before the old one expires, and new hosts covered
// after a reload.
func TestSelfSignedCAIsPersistedAndRenewed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	clock := &testClock{t: time.Now()}
	logs := &syncWriter{}
	cfg := TLSConfig{Mode: TLSSelfSigned, Dir: dir, Hosts: []string{"wiki.example.test", "*.apps.example.test"}}
	certs, err := NewCerts(cfg, slog.New(slog.NewJSONHandler(logs, nil)), clock.now)
	if err != nil {
		t.Fatal(err)
	}
	defer certs.Close()
	if !strings.Contains(logs.String(), filepath.Join(dir, "ca.crt")) {
		t.Errorf("the CA's path is not logged: %s", logs.String())
	}
	for _, f := range []string{"ca.key", "leaf.key"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", f, fi.Mode(), err)
		}
	}
	roots := caPool(t, dir)
	addr := serveTLS(t, certs)
	first := served(t, addr, "localhost", roots)
	served(t, addr, "wiki.example.test", roots)
	served(t, addr, "team.apps.example.test", roots)
	if _, err := handshake(addr, "other.example.test", roots); err == nil {
		t.Error("the leaf verifies for a host no app has")
	}

	// A restart keeps the CA and the leaf.
	again, err := NewCerts(cfg, slog.New(slog.NewJSONHandler(logs, nil)), clock.now)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if leaf := served(t, serveTLS(t, again), "localhost", roots); leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Error("a restart issued a new leaf")
	}

	// Sixty-one days on, fewer than thirty remain: a new leaf, same CA.
	clock.add(61 * 24 * time.Hour)
	if err := certs.refreshSelfSigned(); err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	renewed := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	if _, err := renewed.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost", CurrentTime: clock.now()}); err != nil {
		t.Errorf("renewed leaf: %v", err)
	}
	if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 || !renewed.NotAfter.After(first.NotAfter) {
		t.Errorf("not renewed: %v → %v", first.NotAfter, renewed.NotAfter)
	}

	// A reload that adds a host reissues the leaf to cover it.
	clock.add(-61 * 24 * time.Hour)
	certs.SetHosts([]string{"wiki.example.test", "new.example.test"})
	served(t, addr, "new.example.test", roots)
}

// TestTLSVersionsAndHTTP2: TLS 1.2 is the minimum, HTTP/2 is offered.
func TestTLSVersionsAndHTTP2(t *testing.T) {
	dir := t.TempDir()
	certs, err := NewCerts(TLSConfig{Mode: TLSSelfSigned, Dir: dir}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer certs.Close()
	addr := serveTLS(t, certs)
	roots := caPool(t, dir)
	old := &tls.Config{ServerName: "localhost", RootCAs: roots, MaxVersion: tls.VersionTLS11}
	if conn, err := tls.Dial("tcp", addr, old); err == nil {
		conn.Close()
		t.Error("a TLS 1.1 client was accepted")
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "localhost", RootCAs: roots, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Errorf("ALPN chose %q, want h2", p)
	}
}

// writePair writes a self-signed certificate for name and its key.
func writePair(t *testing.T, certFile, keyFile, name string) *big.Int {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tmpl.SerialNumber
}

// TestCertificateFilesAreReloaded: mode files serves the pair, picks up a
// replaced pair, and keeps serving the old one when the new files are
// broken.
func TestCertificateFilesAreReloaded(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	firstSerial := writePair(t, certFile, keyFile, "old.example.test")
	certs, err := NewCerts(TLSConfig{Mode: TLSFiles, CertFile: certFile, KeyFile: keyFile}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer certs.Close()
	addr := serveTLS(t, certs)
	leafOf := func() *x509.Certificate {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0]
	}
	if leafOf().SerialNumber.Cmp(firstSerial) != 0 {
		t.Fatal("not serving the configured pair")
	}

	// A renewal tool replaces both files: the next check serves them.
	later := time.Now().Add(time.Minute)
	second := writePair(t, certFile, keyFile, "new.example.test")
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if err := certs.loadFiles(); err != nil {
		t.Fatal(err)
	}
	if leafOf().SerialNumber.Cmp(second) != 0 {
		t.Error("the replaced pair is not served")
	}

	// A half-written key: an error for the log, the current pair stays.
	if err := os.WriteFile(keyFile, []byte("-----BEGIN EC PRIVATE KEY-----\ngarbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	later = later.Add(time.Minute)
	_ = os.Chtimes(keyFile, later, later)
	if err := certs.loadFiles(); err == nil {
		t.Error("a broken key was accepted")
	}
	if leafOf().SerialNumber.Cmp(second) != 0 {
		t.Error("a broken pair replaced the working one")
	}
}

// TestHTTPRedirectsToHTTPS: the plain listener sends every request for a
// configured host to HTTPS with path and query; the port follows what the
// client used (none → the default 443, mapped ports stay invisible; an
// explicit one → the gateway's HTTPS port); unknown hosts and bad targets
// are refused, not redirected.
func TestHTTPRedirectsToHTTPS(t *testing.T) {
	g, _ := newGateway(t, newUpstream(t, nil), gatewayOpts{})
	h := g.RedirectHandler("8443")
	for _, tc := range []struct {
		host, target string
		status       int
		location     string
	}{
		{"app.test", "/a/b?c=d&e", http.StatusPermanentRedirect, "https://app.test/a/b?c=d&e"},
		{"APP.test.", "/", http.StatusPermanentRedirect, "https://app.test/"},
		{"app.test:8080", "/a?x=1", http.StatusPermanentRedirect, "https://app.test:8443/a?x=1"},
		{"evil.test", "/", http.StatusMisdirectedRequest, ""},
		{"app.test", "/a%00b", http.StatusBadRequest, ""},
	} {
		r := httptest.NewRequest("GET", "http://"+tc.host+tc.target, nil)
		r.Host, r.RequestURI = tc.host, tc.target
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.status || w.Header().Get("Location") != tc.location {
			t.Errorf("%s%s: %d %q, want %d %q", tc.host, tc.target, w.Code, w.Header().Get("Location"), tc.status, tc.location)
		}
	}
}
