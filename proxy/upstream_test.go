package proxy

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// The upstream timeout in these tests. Waits that must count as a
// timeout are longer than it; answers that must not are far shorter, so
// a loaded machine (the race detector, other packages' tests) cannot turn
// scheduling jitter into a 504.
const shortTimeout = time.Second

// An upload that takes longer than the timeout is the client's time, not
// the app's: the clock starts when the request's last byte is sent.
func TestSlowUploadIsNotAnUpstreamTimeout(t *testing.T) {
	t.Parallel()
	// 8 pieces 300 ms apart: 2.4 s in all, each gap well within the timeout.
	status, read := uploadThrough(t, gatewayOpts{timeout: shortTimeout}, 8, 1000, 300*time.Millisecond)
	if status != 200 || read != "8000" {
		t.Errorf("got %d %q, want 200 and the 8000 bytes the app read", status, read)
	}
}

// Once the app starts answering, it may pause for longer than the timeout
// between pieces (server-sent events, long downloads).
func TestStartedAnswerMayPauseLongerThanTheTimeout(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			_ = http.NewResponseController(w).Flush()
			time.Sleep(shortTimeout + 300*time.Millisecond)
		}
	})
	_, gw := newGateway(t, up, gatewayOpts{timeout: shortTimeout})
	resp, body := raw(t, addr(gw), get("/public/events", "app.test"))
	if resp.StatusCode != 200 || body != "data: 0\n\ndata: 1\n\ndata: 2\n\n" {
		t.Errorf("got %d %q, want all three events", resp.StatusCode, body)
	}
}

// A pooled connection that sat idle for longer than the timeout serves
// the next request normally, and a slow answer on a reused connection
// still gets 504.
func TestIdlePooledConnectionsAreNotTimedOut(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	conns := map[string]bool{} // the gateway's upstream connections, by their address
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		if r.URL.Path == "/public/slow" {
			time.Sleep(2 * shortTimeout)
		}
		fmt.Fprint(w, "ok")
	})
	_, gw := newGateway(t, up, gatewayOpts{timeout: shortTimeout})
	for i := range 3 {
		if resp, body := raw(t, addr(gw), get("/public/fast", "app.test")); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		time.Sleep(shortTimeout + 300*time.Millisecond) // idle in the pool, past the timeout
	}
	if resp, _ := raw(t, addr(gw), get("/public/slow", "app.test")); resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("slow answer on a reused connection: %d, want 504", resp.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(conns) > 2 { // the fast requests share one; the slow one may get another
		t.Errorf("%d upstream connections for sequential requests: the idle one was dropped", len(conns))
	}
}

// After a WebSocket upgrade, the app may stay silent for longer than the
// timeout after the client speaks.
func TestWebSocketMayIdleLongerThanTheTimeout(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprint(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = rw.Flush()
		for {
			line, err := rw.ReadString('\n')
			if err != nil {
				return
			}
			time.Sleep(shortTimeout + 300*time.Millisecond) // thinks longer than the timeout before each reply
			fmt.Fprintf(rw, "echo:%s", line)
			_ = rw.Flush()
		}
	})
	_, gw := newGateway(t, up, gatewayOpts{timeout: shortTimeout})
	conn, err := net.Dial("tcp", addr(gw))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprint(conn, "GET /public/chat HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	for _, msg := range []string{"one", "two"} {
		fmt.Fprintf(conn, "%s\n", msg)
		if line, err := br.ReadString('\n'); err != nil || line != "echo:"+msg+"\n" {
			t.Fatalf("reply to %s: %q, %v", msg, line, err)
		}
	}
}

// An app that accepts the upgrade request but never answers it gets 504
// like any other.
func TestUnansweredUpgradeTimesOut(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { <-release })
	defer close(release)
	_, gw := newGateway(t, up, gatewayOpts{timeout: shortTimeout})
	resp, _ := raw(t, addr(gw), "GET /public/chat HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("status %d, want 504", resp.StatusCode)
	}
}
