package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/policy"
	"github.com/gatehouse-auth/gatehouse/store"
)

// lineBuffer collects access lines; each Write must be whole lines.
type lineBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	return b.buf.Write(p)
}

func (b *lineBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	text := b.buf.String()
	if !strings.HasSuffix(text, "\n") {
		t.Fatalf("log does not end in a newline: %q", text)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestAccessLogLines(t *testing.T) {
	up := newUpstream(t, nil)
	logs := &lineBuffer{}
	_, srv := newGateway(t, up, gatewayOpts{access: logs})
	a := addr(srv)

	raw(t, a, get("/home?reset_token=SECRET-TOKEN", "app.test", "Cookie: "+testCookie+"=alice; theme=dark", "X-Forwarded-For: 203.0.113.9"))
	raw(t, a, get("/api/items", "APP.test:443", "Accept: application/json"))
	raw(t, a, get("/a/%22quoted%22/caf%c3%a9/./x", "app.test", "Cookie: "+testCookie+"=bob"))
	raw(t, a, get("/x/%2e%2e/%2E%2E/etc/passwd?token=SECRET-TOKEN", "app.test"))
	raw(t, a, "POST /admin/x HTTP/1.1\r\nHost: app.test\r\nCookie: "+testCookie+"=bob\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

	lines := logs.lines(t)
	if len(lines) != 5 {
		t.Fatalf("got %d lines, want 5: %v", len(lines), lines)
	}
	if logs.writes != 5 {
		t.Errorf("%d writes for 5 lines: each line must be one Write, or concurrent lines interleave", logs.writes)
	}
	want := []map[string]any{
		{"method": "GET", "host": "app.test", "path": "/home", "status": 200.0, "ip": "127.0.0.1", "user": "alice", "rule": "test.yaml:5"},
		{"method": "GET", "host": "APP.test:443", "path": "/api/items", "status": 401.0, "user": "", "rule": "test.yaml:3"},
		{"method": "GET", "path": "/a/%22quoted%22/caf%C3%A9/x", "status": 200.0, "user": "bob", "rule": "test.yaml:5"},
		// A refused target is logged as sent, still without its query.
		{"method": "GET", "path": "/x/%2e%2e/%2E%2E/etc/passwd", "status": 400.0, "user": "", "rule": ""},
		{"method": "POST", "path": "/admin/x", "status": 403.0, "user": "bob", "rule": "test.yaml:2"},
	}
	for i, line := range lines {
		if line["level"] != "INFO" || line["msg"] != "access" {
			t.Errorf("line %d: level %v msg %v, want INFO access", i, line["level"], line["msg"])
		}
		ts, _ := line["time"].(string)
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("line %d: time %q: %v", i, ts, err)
		}
		if d, _ := line["duration"].(float64); d <= 0 {
			t.Errorf("line %d: duration %v, want nanoseconds > 0", i, line["duration"])
		}
		for k, v := range want[i] {
			if line[k] != v {
				t.Errorf("line %d: %s = %#v, want %#v", i, k, line[k], v)
			}
		}
	}
	if b, _ := lines[0]["bytes"].(float64); b != float64(len("app says hi")) {
		t.Errorf("bytes = %v, want the body length %d", lines[0]["bytes"], len("app says hi"))
	}
	text := logs.buf.String()
	for _, secret := range []string{"SECRET-TOKEN", "reset_token", "theme=dark", testCookie, "203.0.113.9"} {
		if strings.Contains(text, secret) {
			t.Errorf("the access log holds %q:\n%s", secret, text)
		}
	}
}

func TestAccessLogOff(t *testing.T) {
	up := newUpstream(t, nil)
	g, srv := newGateway(t, up, gatewayOpts{})
	if g.access != nil {
		t.Fatal("no writer, yet an access log")
	}
	if resp, _ := raw(t, addr(srv), get("/home", "app.test", "Cookie: "+testCookie+"=alice")); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// The cached per-second formatting writes exactly what RFC3339Nano does,
// across second, day and zone changes and with trailing zeros trimmed.
func TestAccessLogTimeIsRFC3339Nano(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		ny = time.FixedZone("EST", -5*3600) // no zone database on this machine
	}
	var cache atomic.Pointer[stamp]
	base := time.Date(2026, 3, 8, 6, 59, 58, 0, time.UTC) // 01:59:58 in New York, just before DST starts
	for i := 0; i < 5000; i++ {
		ts := base.Add(time.Duration(i) * 737 * time.Millisecond).Add(time.Duration(i*i%1000) * time.Nanosecond)
		for _, tm := range []time.Time{ts, ts.In(ny), ts.In(time.FixedZone("", 5*3600+30*60)), ts.Truncate(time.Second), ts.Truncate(time.Millisecond)} {
			got := string(appendTime(nil, tm, &cache))
			if want := tm.Format(time.RFC3339Nano); got != want {
				t.Fatalf("%v: got %s, want %s", tm, got, want)
			}
		}
	}
}

func testEntry(method, host, path, user, file string) *accessEntry {
	info := &reqInfo{client: netip.MustParseAddr("2001:db8::7"), target: policy.Target{Path: path}}
	if user != "" {
		info.user = &store.User{Username: user}
	}
	info.decision.Rule = &policy.Rule{Source: policy.Source{File: file, Line: 12}}
	return &accessEntry{Time: time.Date(2026, 12, 1, 9, 30, 0, 123456789, time.UTC), Method: method, Host: host,
		Path: path, Status: 403, Bytes: 1234, Duration: 1500 * time.Microsecond, Info: info}
}

// FuzzAccessLine checks the hand-made encoder against slog's JSON handler,
// which writes every other log line: for any strings, the line is one
// line of valid JSON and decodes to exactly what slog's line decodes to.
func FuzzAccessLine(f *testing.F) {
	f.Add("GET", "app.test", "/home", "alice", "gatehouse.yaml")
	f.Add("POST", "APP.test:8443", `/a"b\c`, "", "conf/with space.yaml")
	f.Add("GET", "h", "/\x00\x1f\x7f\n\r\t", "bob", "\xff\xfe")
	f.Add("GET", "h", "/\u2028\u2029\ufffd", "名前", "c:\\gatehouse\\config.yaml")
	f.Add("GET", "h", "/\xe2\x80", "x", "\xe2\x80\xa8")
	f.Fuzz(func(t *testing.T, method, host, path, user, file string) {
		e := testEntry(method, host, path, user, file)
		line := appendAccessLine(nil, e, new(atomic.Pointer[stamp]))
		if bytes.IndexByte(line, '\n') != len(line)-1 {
			t.Fatalf("not exactly one line: %q", line)
		}
		var got map[string]any
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("invalid JSON %q: %v", line, err)
		}

		var ref bytes.Buffer
		rule := e.Info.decision.Rule.Source.String()
		slog.New(slog.NewJSONHandler(&ref, nil)).LogAttrs(context.Background(), slog.LevelInfo, "access",
			slog.String("method", method), slog.String("host", host), slog.String("path", path),
			slog.Int("status", e.Status), slog.Int64("bytes", e.Bytes), slog.Duration("duration", e.Duration),
			slog.String("ip", e.Info.client.String()), slog.String("user", user), slog.String("rule", rule))
		var want map[string]any
		if err := json.Unmarshal(ref.Bytes(), &want); err != nil {
			t.Fatalf("slog wrote invalid JSON %q: %v", ref.Bytes(), err)
		}
		if _, err := time.Parse(time.RFC3339Nano, got["time"].(string)); err != nil {
			t.Errorf("time %q: %v", got["time"], err)
		}
		delete(got, "time")
		delete(want, "time")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("line differs from slog's\n got: %s\nwant: %s", line, ref.Bytes())
		}
		// Escapes must match too, not only the decoded values: a reader
		// grepping for \u2028 or \ufffd sees the same bytes in both.
		if !bytes.Contains(ref.Bytes(), line[bytes.Index(line, []byte(`,"method"`)):]) {
			t.Errorf("fields are encoded differently from slog's\n got: %s\nwant: %s", line, ref.Bytes())
		}
	})
}
