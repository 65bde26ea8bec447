package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// echoServer is the built-in "echo" upstream: an HTTP server on an
// in-memory listener, reached through the same reverse proxy as any real
// app, so what it shows is exactly what an app behind Gatehouse receives.
type echoServer struct {
	ln        *memListener
	srv       *http.Server
	transport *http.Transport
}

func newEchoServer(timeout time.Duration) *echoServer {
	ln := &memListener{conns: make(chan net.Conn), done: make(chan struct{})}
	e := &echoServer{
		ln:  ln,
		srv: &http.Server{Handler: http.HandlerFunc(serveEcho), ReadHeaderTimeout: 10 * time.Second},
		transport: &http.Transport{
			DialContext:           ln.dial,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: timeout,
		},
	}
	go func() { _ = e.srv.Serve(ln) }()
	return e
}

func (e *echoServer) close() {
	e.transport.CloseIdleConnections()
	_ = e.srv.Close()
}

// memListener is a net.Listener whose connections are in-memory pipes.
type memListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

var errListenerClosed = errors.New("proxy: echo listener closed")

func (l *memListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, errListenerClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, errListenerClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *memListener) Addr() net.Addr { return memAddr{} }

type memAddr struct{}

func (memAddr) Network() string { return "memory" }
func (memAddr) String() string  { return "echo" }

// echoRequest is what the echo app shows.
type echoRequest struct {
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Host    string              `json:"host"`
	Headers map[string][]string `json:"headers"`
}

type echoHeader struct {
	Name     string
	Values   []string
	Identity bool
}

var echoPage = template.Must(template.New("echo").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Echo — what the app received</title>
<style>
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f5f7fa;color:#1b2330}
main{max-width:56rem;margin:2rem auto;padding:0 1rem}
h1{font-size:1.5rem;margin:0 0 .25rem}
p{margin:.25rem 0 1rem;color:#4a5568}
table{border-collapse:collapse;width:100%;background:#fff;border-radius:8px;overflow:hidden;box-shadow:0 1px 3px rgba(0,0,0,.1)}
th,td{text-align:left;padding:.5rem .75rem;border-bottom:1px solid #e2e8f0;vertical-align:top;word-break:break-all}
th{width:30%;font-weight:600}
tr.id th,tr.id td{background:#e8f1ff}
code{font:14px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
.req{background:#fff;padding:.75rem;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.1);margin-bottom:1.5rem}
a{color:#1d4ed8}
</style></head>
<body><main>
<h1>Echo</h1>
<p>This built-in app shows the request exactly as an app behind Gatehouse receives it. Identity headers are highlighted.</p>
<div class="req"><code>{{.Method}} {{.Path}}</code><br><code>Host: {{.Host}}</code></div>
<table>
<caption class="visually-hidden">Request headers</caption>
<thead><tr><th scope="col">Header</th><th scope="col">Value</th></tr></thead>
<tbody>
{{range .Headers}}<tr{{if .Identity}} class="id"{{end}}><th scope="row"><code>{{.Name}}</code></th><td>{{range $i, $v := .Values}}{{if $i}}<br>{{end}}<code>{{$v}}</code>{{end}}</td></tr>
{{end}}</tbody></table>
<p><a href="/.gatehouse/logout">Sign out</a></p>
</main></body></html>
`))

// serveEcho answers with the request it received: HTML for browsers,
// JSON otherwise.
func serveEcho(w http.ResponseWriter, r *http.Request) {
	req := echoRequest{Method: r.Method, Path: r.RequestURI, Host: r.Host, Headers: r.Header}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if !strings.Contains(r.Header.Get("Accept"), "text/html") {
		h.Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(req)
		return
	}
	var rows []echoHeader
	for name, values := range r.Header {
		rows = append(rows, echoHeader{Name: name, Values: values, Identity: strings.HasPrefix(name, "Remote-")})
	}
	slices.SortFunc(rows, func(a, b echoHeader) int { return strings.Compare(a.Name, b.Name) })
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	_ = echoPage.Execute(w, struct {
		Method, Path, Host string
		Headers            []echoHeader
	}{req.Method, req.Path, req.Host, rows})
}
