package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gatehouse-auth/gatehouse/policy"
)

// Listeners are the sockets the gateway serves on. With TLS, HTTPS serves
// the gateway and HTTP redirects to it; without TLS, HTTP serves the
// gateway and HTTPS must be nil.
type Listeners struct {
	HTTPS net.Listener
	HTTP  net.Listener
}

// Server timeouts. There is no ReadTimeout or WriteTimeout: uploads,
// downloads, streams and WebSockets may take as long as they need; a slow
// client can hold a connection but never a header.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
)

// Serve runs the gateway on ls until ctx is done, then stops accepting and
// lets in-flight requests finish for up to drain.
func Serve(ctx context.Context, g *Gateway, certs *Certs, ls Listeners, drain time.Duration, log *slog.Logger) error {
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	var servers []*http.Server
	errc := make(chan error, 2)
	start := func(srv *http.Server, ln net.Listener, tls bool) {
		servers = append(servers, srv)
		go func() {
			var err error
			if tls {
				err = srv.ServeTLS(ln, "", "")
			} else {
				err = srv.Serve(ln)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	newServer := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: readHeaderTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          errLog,
		}
	}
	if certs != nil {
		if ls.HTTPS == nil {
			return errors.New("proxy: TLS needs an HTTPS listener")
		}
		srv := newServer(g)
		srv.TLSConfig = certs.TLSConfig()
		start(srv, ls.HTTPS, true)
		if ls.HTTP != nil {
			_, port, _ := net.SplitHostPort(ls.HTTPS.Addr().String())
			start(newServer(certs.HTTPHandler(g.RedirectHandler(port))), ls.HTTP, false)
		}
	} else {
		if ls.HTTP == nil {
			return errors.New("proxy: an HTTP listener is required")
		}
		start(newServer(g), ls.HTTP, false)
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	for _, srv := range servers {
		if serr := srv.Shutdown(shutdownCtx); serr != nil {
			log.Warn("shutdown: requests still running were cut off", "err", serr)
			_ = srv.Close()
		}
	}
	return err
}

// RedirectHandler answers on the plain-HTTP listener: every request for a
// configured host is sent to the same path and query over HTTPS; other
// hosts get 421 and no redirect.
func (g *Gateway) RedirectHandler(httpsPort string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := g.state.Load()
		if _, err := policy.ParseTarget(r.RequestURI); err != nil {
			g.fail(w, r, http.StatusBadRequest)
			return
		}
		if _, ok := st.policy.Lookup(r.Host); !ok {
			g.fail(w, r, http.StatusMisdirectedRequest)
			return
		}
		// A Host without a port means the client used port 80, so its
		// HTTPS twin is 443 as far as the client can tell: ports mapped
		// 80→8080 and 443→8443 (Docker, a firewall) stay invisible. A
		// Host with a port names the gateway's own ports: use ours.
		host := policy.CanonicalHost(r.Host)
		if _, _, err := net.SplitHostPort(r.Host); err == nil && httpsPort != "" && httpsPort != "443" {
			host = net.JoinHostPort(host, httpsPort)
		}
		w.Header().Set("Connection", "close")
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}
