package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// TLSACME obtains and renews certificates from an ACME CA (Let's Encrypt
// by default) for every configured app host.
const TLSACME = "acme"

// DefaultACMEDirectory is Let's Encrypt's production directory.
const DefaultACMEDirectory = certmagic.LetsEncryptProductionCA

// acmeState is the certmagic machinery of acme mode. certmagic.HTTPS is
// not used: it changes package globals, binds every interface and cannot
// be shut down.
type acmeState struct {
	cache *certmagic.Cache
	// managed obtains and renews the certificates of exact app hosts from
	// start-up; onDemand obtains them at the handshake, only for names a
	// wildcard app allows. certmagic treats any Config with OnDemand set
	// as on-demand for every name, so they are two Configs on one cache.
	managed, onDemand *certmagic.Config
	issuer            *certmagic.ACMEIssuer
	allowed           func(name string) bool          // TLSConfig.OnDemandAllowed, never nil
	exact             atomic.Pointer[map[string]bool] // exact app hosts, managed from start-up
}

// initACME builds certmagic's cache, configs and issuers, and starts
// managing the exact app hosts in the background: a CA that is down or a
// challenge that fails is logged and retried with backoff, and the gateway
// serves meanwhile (hosts without a certificate fail their handshake).
func (c *Certs) initACME() error {
	cfg := c.cfg
	if len(cfg.Hosts) == 0 {
		return errors.New("tls: mode acme needs at least one app host")
	}
	var roots *x509.CertPool
	if len(cfg.CARoots) > 0 {
		var err error
		if roots, err = x509.SystemCertPool(); err != nil || roots == nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(cfg.CARoots) {
			return errors.New("tls: ca_root holds no PEM certificate")
		}
	}
	ca := cfg.CA
	if ca == "" {
		ca = DefaultACMEDirectory
	}
	zl := zap.New(&slogCore{log: c.log, level: zapcore.InfoLevel})
	storage := &certmagic.FileStorage{Path: filepath.Join(cfg.Dir, "acme")}
	st := &acmeState{allowed: cfg.OnDemandAllowed}
	if st.allowed == nil {
		st.allowed = func(string) bool { return false }
	}
	exact := exactHosts(cfg.Hosts)
	st.exact.Store(&exact)
	st.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(cert certmagic.Certificate) (*certmagic.Config, error) {
			for _, n := range cert.Names {
				if (*st.exact.Load())[n] {
					return st.managed, nil
				}
			}
			return st.onDemand, nil
		},
		RenewCheckInterval: cfg.RenewCheckInterval,
		Logger:             zl,
	})
	newConfig := func(od *certmagic.OnDemandConfig) (*certmagic.Config, *certmagic.ACMEIssuer) {
		m := certmagic.New(st.cache, certmagic.Config{Storage: storage, Logger: zl, OnDemand: od})
		iss := certmagic.NewACMEIssuer(m, certmagic.ACMEIssuer{
			CA:           ca,
			Email:        cfg.Email,
			Agreed:       true,
			TrustedRoots: roots,
			// The gateway's own listeners answer the challenges: HTTP-01
			// through HTTPHandler, TLS-ALPN-01 through TLSConfig.
			AltHTTPPort:    cfg.HTTPPort,
			AltTLSALPNPort: cfg.HTTPSPort,
			Logger:         zl,
		})
		m.Issuers = []certmagic.Issuer{iss}
		return m, iss
	}
	st.managed, st.issuer = newConfig(nil)
	st.onDemand, _ = newConfig(&certmagic.OnDemandConfig{
		// Only names a wildcard app allows; never a name a client merely sent.
		DecisionFunc: func(_ context.Context, name string) error {
			if st.allowed(name) {
				return nil
			}
			return fmt.Errorf("%q is not a configured host", name)
		},
	})
	c.acme = st
	if err := st.managed.ManageAsync(context.Background(), slices.Sorted(maps.Keys(exact))); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	c.log.Info("tls: managing certificates with ACME", "ca", ca, "hosts", slices.Sorted(maps.Keys(exact)), "storage", storage.Path)
	return nil
}

// exactHosts are the hosts that are not wildcards, lower case.
func exactHosts(hosts []string) map[string]bool {
	m := map[string]bool{}
	for _, h := range hosts {
		if !strings.HasPrefix(h, "*.") {
			m[strings.ToLower(h)] = true
		}
	}
	return m
}

// setHosts starts managing exact hosts a reload added, and stops serving
// and renewing the ones it removed (their certificates stay in storage, so
// adding a host back costs no new order while they are valid).
func (st *acmeState) setHosts(hosts []string, log *slog.Logger) {
	next := exactHosts(hosts)
	old := *st.exact.Load()
	var added []string
	var removed []certmagic.SubjectIssuer
	for h := range next {
		if !old[h] {
			added = append(added, h)
		}
	}
	for h := range old {
		if !next[h] {
			removed = append(removed, certmagic.SubjectIssuer{Subject: h})
		}
	}
	st.exact.Store(&next)
	if len(removed) > 0 {
		st.cache.RemoveManaged(removed)
	}
	if len(added) == 0 {
		return
	}
	slices.Sort(added)
	if err := st.managed.ManageAsync(context.Background(), added); err != nil {
		log.Error("tls: cannot manage the new hosts", "hosts", added, "err", err)
		return
	}
	log.Info("tls: managing certificates for new hosts", "hosts", added)
}

func (st *acmeState) tlsConfig() *tls.Config {
	t := st.managed.TLSConfig()
	t.MinVersion = tls.VersionTLS12
	t.NextProtos = append([]string{"h2", "http/1.1"}, slices.DeleteFunc(t.NextProtos, func(p string) bool { return p == "h2" || p == "http/1.1" })...)
	t.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
		switch {
		case name == "" || (*st.exact.Load())[name]:
			return st.managed.GetCertificate(hello)
		case st.allowed(name):
			return st.onDemand.GetCertificate(hello)
		}
		// Not even a cached certificate: a host a reload removed is gone.
		return nil, fmt.Errorf("no certificate for %q: not a configured host", name)
	}
	return t
}

// HTTPHandler answers ACME HTTP-01 challenges on the plain-HTTP listener
// and passes everything else to next.
func (c *Certs) HTTPHandler(next http.Handler) http.Handler {
	if c == nil || c.acme == nil {
		return next
	}
	return c.acme.issuer.HTTPChallengeHandler(next)
}

// slogCore sends certmagic's zap logs to the gateway's slog logger.
type slogCore struct {
	log    *slog.Logger
	level  zapcore.Level
	fields []zapcore.Field
}

func (s *slogCore) Enabled(l zapcore.Level) bool { return l >= s.level }
func (s *slogCore) With(f []zapcore.Field) zapcore.Core {
	return &slogCore{log: s.log, level: s.level, fields: append(slices.Clone(s.fields), f...)}
}
func (s *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if s.Enabled(e.Level) {
		return ce.AddCore(e, s)
	}
	return ce
}
func (s *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range append(slices.Clone(s.fields), fields...) {
		f.AddTo(enc)
	}
	attrs := []any{"component", "tls"}
	for k, v := range enc.Fields {
		attrs = append(attrs, k, v)
	}
	level := slog.LevelInfo
	switch {
	case e.Level >= zapcore.ErrorLevel:
		level = slog.LevelError
	case e.Level >= zapcore.WarnLevel:
		level = slog.LevelWarn
	case e.Level < zapcore.InfoLevel:
		level = slog.LevelDebug
	}
	s.log.Log(context.Background(), level, "tls: "+e.Message, attrs...)
	return nil
}
func (s *slogCore) Sync() error { return nil }
