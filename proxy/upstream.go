package proxy

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"
)

// upstreamTransport carries requests to the apps. An app gets timeout from
// the last byte of a request to the first byte of its answer, then 504.
// The body may then stream for as long as it takes.
//
// http.Transport's ResponseHeaderTimeout does the same with a new timer,
// a deferred Stop and an extra select case on every request. Under load
// that cost more than any other part of the round trip the gateway adds.
// Here the timeout is a read deadline on the upstream connection: armed
// when the request is written, disarmed by the first bytes of the answer.
// It is a field on a connection the runtime already polls, with no
// allocation.
//
// Upgrade requests (WebSocket) go through a second transport with the
// stock ResponseHeaderTimeout instead. After the 101, the connection
// carries frames both ways, and a frame the client sends must not start
// a clock on the app's next frame.
type upstreamTransport struct {
	plain   *http.Transport
	upgrade *http.Transport
}

func newUpstreamTransport(timeout time.Duration) *upstreamTransport {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	base := func() *http.Transport {
		return &http.Transport{
			Proxy:                 nil,   // never route upstream traffic through an environment proxy
			ForceAttemptHTTP2:     false, // upstreams are plain HTTP/1.1 apps: one request per connection at a time
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
	}
	t := &upstreamTransport{plain: base(), upgrade: base()}
	t.plain.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &answerDeadlineConn{Conn: c, timeout: timeout}, nil
	}
	t.upgrade.DialContext = dialer.DialContext
	t.upgrade.ResponseHeaderTimeout = timeout
	return t
}

func (t *upstreamTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Upgrade") != "" {
		return t.upgrade.RoundTrip(r)
	}
	return t.plain.RoundTrip(r)
}

// CloseIdleConnections closes both pools' idle connections.
func (t *upstreamTransport) CloseIdleConnections() {
	t.plain.CloseIdleConnections()
	t.upgrade.CloseIdleConnections()
}

// answerDeadlineConn gives the app timeout to start answering. Every write
// (the request line, headers and each piece of the body) restarts the
// clock, so a long upload never counts against the app. The first bytes
// read after it stop the clock. http.Transport writes a request only
// after reading the previous answer to its end, so an idle pooled
// connection is never armed. A deadline that fires makes the waiting read
// fail with a timeout, and the gateway answers 504.
type answerDeadlineConn struct {
	net.Conn
	timeout time.Duration

	mu    sync.Mutex // orders arming and disarming between the transport's read and write loops
	armed bool
}

func (c *answerDeadlineConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.mu.Lock()
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	c.armed = true
	c.mu.Unlock()
	return n, err
}

func (c *answerDeadlineConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		if c.armed {
			_ = c.Conn.SetReadDeadline(time.Time{})
			c.armed = false
		}
		c.mu.Unlock()
	}
	return n, err
}
