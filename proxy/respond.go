package proxy

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/policy"
	"github.com/gatehouse-auth/gatehouse/store"
)

// Texts a non-browser client sees. They are the whole JSON body; tests pin them.
const (
	msgAuthRequired = `{"error":"authentication required"}`
	msgForbidden    = `{"error":"forbidden"}`
)

// LoginPath is where browsers without a session are sent.
const LoginPath = Prefix + "login"

// wantsHTML reports whether the request comes from a browser navigation:
// GET or HEAD accepting text/html.
func wantsHTML(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(v, "text/html") {
			return true
		}
	}
	return false
}

// login answers a caller without a session where the rule needs one:
// browsers are sent to the sign-in page with their target in rd, API
// clients get 401.
func (g *Gateway) login(w http.ResponseWriter, r *http.Request, t policy.Target) {
	if wantsHTML(r) {
		rd := t.Forward
		if t.HasQuery {
			rd += "?" + t.Query
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, LoginPath+"?rd="+url.QueryEscape(rd), http.StatusFound)
		return
	}
	h := w.Header()
	h.Set("WWW-Authenticate", `Gatehouse realm="gatehouse", login="`+LoginPath+`"`)
	writeJSON(w, http.StatusUnauthorized, msgAuthRequired)
}

// forbidden answers a caller the policy turned away.
func (g *Gateway) forbidden(w http.ResponseWriter, r *http.Request, user *store.User, d policy.Decision) {
	if wantsHTML(r) {
		rule := ""
		if d.Rule != nil {
			rule = d.Rule.Source.String()
		}
		g.deps.Pages.Forbidden(w, r, user, rule)
		return
	}
	writeJSON(w, http.StatusForbidden, msgForbidden)
}

// fail answers with an error status: a page for browsers, JSON otherwise.
func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, status int) {
	if wantsHTML(r) {
		g.deps.Pages.Error(w, r, status)
		return
	}
	writeJSON(w, status, `{"error":"`+strings.ToLower(http.StatusText(status))+`"}`)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body + "\n"))
}

// statusWriter remembers the status for the access log. Unwrap lets
// http.ResponseController reach Flush and Hijack (streaming, WebSocket).
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Flush is here for code that type-asserts http.Flusher.
func (w *statusWriter) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// maxLoggedTarget bounds how much of a refused request target is logged.
const maxLoggedTarget = 1024

// accessLog writes the request's line, if the access log is on.
func (g *Gateway) accessLog(r *http.Request, w *statusWriter, info *reqInfo, start time.Time) {
	if g.access == nil {
		return
	}
	path := info.target.Path
	if path == "" { // a refused target: log what was asked, without the query
		path, _, _ = strings.Cut(r.RequestURI, "?")
		if len(path) > maxLoggedTarget {
			path = path[:maxLoggedTarget]
		}
	}
	now := time.Now()
	g.access.write(&accessEntry{Time: now, Method: r.Method, Host: r.Host, Path: path,
		Status: w.status, Bytes: w.bytes, Duration: now.Sub(start), Info: info})
}
