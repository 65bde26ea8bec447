package proxy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// TLS modes.
const (
	TLSSelfSigned = "self-signed"
	TLSFiles      = "files"
	TLSOff        = "off"
)

// TLSConfig selects where the gateway's certificates come from.
type TLSConfig struct {
	Mode     string   // TLSSelfSigned (default), TLSFiles, TLSACME or TLSOff
	Dir      string   // where TLS material is kept (created 0700): the local CA, ACME storage
	Hosts    []string // app host names ("*.x" allowed): the self-signed leaf covers them, ACME manages them
	CertFile string   // files: PEM chain
	KeyFile  string   // files: PEM key

	// ACME.
	Email           string                 // account email
	CA              string                 // directory URL; default Let's Encrypt
	CARoots         []byte                 // PEM roots to trust for the CA (private CAs, Pebble)
	HTTPPort        int                    // the plain-HTTP listener's port, where HTTP-01 is answered
	HTTPSPort       int                    // the HTTPS listener's port, where TLS-ALPN-01 is answered
	OnDemandAllowed func(name string) bool // may a certificate be obtained at handshake for name (wildcard apps)
	// RenewCheckInterval is how often certificates are checked for
	// renewal; default certmagic's (10 minutes).
	RenewCheckInterval time.Duration
}

// Certs serves the gateway's certificate and keeps it fresh: a self-signed
// leaf is renewed before it expires; files are reloaded when they change.
type Certs struct {
	cfg  TLSConfig
	log  *slog.Logger
	now  func() time.Time
	cert atomic.Pointer[tls.Certificate]
	stop chan struct{}
	once sync.Once
	mod  time.Time  // files: modification time of the loaded pair
	acme *acmeState // acme mode

	mu    sync.Mutex // serialises self-signed refreshes and guards hosts
	hosts []string   // app hosts; SetHosts follows config reloads
}

// Self-signed validity: the local CA lives ten years, leaves 90 days and
// are renewed when fewer than 30 remain.
const (
	caValidity    = 10 * 365 * 24 * time.Hour
	leafValidity  = 90 * 24 * time.Hour
	leafRenewal   = 30 * 24 * time.Hour
	checkInterval = time.Hour
)

// NewCerts loads or creates the certificate for cfg and starts keeping it
// fresh. It returns nil, nil for TLSOff.
func NewCerts(cfg TLSConfig, log *slog.Logger, now func() time.Time) (*Certs, error) {
	if now == nil {
		now = time.Now
	}
	c := &Certs{cfg: cfg, log: log, now: now, stop: make(chan struct{}), hosts: cfg.Hosts}
	switch cfg.Mode {
	case TLSOff:
		return nil, nil
	case TLSSelfSigned, "":
		c.cfg.Mode = TLSSelfSigned
		if err := c.refreshSelfSigned(); err != nil {
			return nil, err
		}
		log.Info("tls: self-signed certificate ready; trust this CA to silence browser warnings",
			"ca", filepath.Join(cfg.Dir, "ca.crt"))
	case TLSFiles:
		if err := c.loadFiles(); err != nil {
			return nil, err
		}
	case TLSACME:
		if err := c.initACME(); err != nil {
			return nil, err
		}
		return c, nil // certmagic renews on its own
	default:
		return nil, fmt.Errorf("tls: unknown mode %q", cfg.Mode)
	}
	go c.keepFresh()
	return c, nil
}

// Close stops the background renewal.
func (c *Certs) Close() {
	if c != nil {
		c.once.Do(func() {
			close(c.stop)
			if c.acme != nil {
				c.acme.cache.Stop()
			}
		})
	}
}

// TLSConfig is the server-side TLS configuration: TLS 1.2 or newer, HTTP/2.
func (c *Certs) TLSConfig() *tls.Config {
	if c.acme != nil {
		return c.acme.tlsConfig()
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.cert.Load(), nil
		},
	}
}

func (c *Certs) keepFresh() {
	interval := checkInterval
	if c.cfg.Mode == TLSFiles {
		interval = 5 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		var err error
		if c.cfg.Mode == TLSFiles {
			err = c.loadFiles()
		} else {
			err = c.refreshSelfSigned()
		}
		if err != nil {
			c.log.Error("tls: keeping the current certificate", "err", err)
		}
	}
}

// loadFiles (re)loads the certificate pair when its files changed.
func (c *Certs) loadFiles() error {
	mod, err := latestMod(c.cfg.CertFile, c.cfg.KeyFile)
	if err != nil {
		return err
	}
	if c.cert.Load() != nil && mod.Equal(c.mod) {
		return nil
	}
	pair, err := tls.LoadX509KeyPair(c.cfg.CertFile, c.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("tls: loading %s and %s: %w", c.cfg.CertFile, c.cfg.KeyFile, err)
	}
	c.cert.Store(&pair)
	if !c.mod.IsZero() {
		c.log.Info("tls: certificate reloaded", "cert_file", c.cfg.CertFile)
	}
	c.mod = mod
	return nil
}

func latestMod(files ...string) (time.Time, error) {
	var latest time.Time
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return time.Time{}, fmt.Errorf("tls: %w", err)
		}
		if fi.ModTime().After(latest) {
			latest = fi.ModTime()
		}
	}
	return latest, nil
}

// SetHosts follows a config reload that changed the app hosts: under acme,
// new exact hosts are obtained in the background (and removed ones are no
// longer renewed); under self-signed, the leaf is reissued to cover them.
func (c *Certs) SetHosts(hosts []string) {
	if c == nil {
		return
	}
	switch c.cfg.Mode {
	case TLSACME:
		c.acme.setHosts(hosts, c.log)
	case TLSSelfSigned:
		c.mu.Lock()
		c.hosts = slices.Clone(hosts)
		c.mu.Unlock()
		if err := c.refreshSelfSigned(); err != nil {
			c.log.Error("tls: keeping the current certificate", "err", err)
		}
	}
}

// selfSignedNames are the names the self-signed leaf covers; c.mu is held.
func (c *Certs) selfSignedNames() []string {
	names := []string{"localhost"}
	for _, h := range c.hosts {
		h = strings.ToLower(h)
		if !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	return names
}

// refreshSelfSigned makes sure a local CA and a current leaf for every
// configured name exist under Dir, creating or renewing what is missing.
func (c *Certs) refreshSelfSigned() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := os.MkdirAll(c.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	ca, caKey, err := c.loadOrCreateCA()
	if err != nil {
		return err
	}
	names := c.selfSignedNames()
	leafPath, keyPath := filepath.Join(c.cfg.Dir, "leaf.crt"), filepath.Join(c.cfg.Dir, "leaf.key")
	if pair, err := tls.LoadX509KeyPair(leafPath, keyPath); err == nil && c.leafFresh(pair.Leaf, ca, names) {
		c.cert.Store(&pair)
		return nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	now := c.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"Gatehouse"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	if err := writePEM(leafPath, "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	if err := writeKey(keyPath, key); err != nil {
		return err
	}
	pair, err := tls.LoadX509KeyPair(leafPath, keyPath)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	c.cert.Store(&pair)
	c.log.Info("tls: issued self-signed certificate", "names", names, "expires", tmpl.NotAfter.Format(time.RFC3339))
	return nil
}

// leafFresh reports whether leaf was signed by ca, covers names and is not
// due for renewal.
func (c *Certs) leafFresh(leaf, ca *x509.Certificate, names []string) bool {
	if leaf == nil || leaf.CheckSignatureFrom(ca) != nil {
		return false
	}
	if c.now().Add(leafRenewal).After(leaf.NotAfter) {
		return false
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
				return false
			}
		} else if !slices.Contains(leaf.DNSNames, n) {
			return false
		}
	}
	return true
}

func (c *Certs) loadOrCreateCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPath, keyPath := filepath.Join(c.cfg.Dir, "ca.crt"), filepath.Join(c.cfg.Dir, "ca.key")
	if pair, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
		if ok && pair.Leaf != nil && c.now().Add(leafValidity).Before(pair.Leaf.NotAfter) {
			return pair.Leaf, key, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		c.log.Warn("tls: replacing unreadable local CA", "err", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	now := c.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Gatehouse local CA", Organization: []string{"Gatehouse"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	if err := writeKey(keyPath, key); err != nil {
		return nil, nil, err
	}
	if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	// A new CA invalidates any leaf signed by the old one.
	_ = os.Remove(filepath.Join(c.cfg.Dir, "leaf.crt"))
	return cert, key, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		panic("crypto/rand failed: " + err.Error()) // the OS random source is gone; nothing is safe
	}
	return n
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

// writePEM writes atomically (temp file and rename) so a crash never
// leaves half a key behind.
func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	var buf bytes.Buffer
	if err := pem.Encode(&buf, &pem.Block{Type: typ, Bytes: der}); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), mode); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	return nil
}
