package proxy

import (
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// accessLog writes one JSON line per request, shaped like the gateway's
// other log lines (slog's JSON handler: time, level, msg, then fields), so
// one parser reads both. It is encoded by hand: going through slog cost
// more than the rest of the gateway's work on a signed-in request (see
// BenchmarkSignedInRequest), and every request pays it.
type accessLog struct {
	w     io.Writer
	bufs  sync.Pool // *[]byte
	stamp atomic.Pointer[stamp]
}

// stamp is the formatted part of one second's timestamps: formatting a
// date costs more than the rest of the line, and a busy gateway writes
// thousands of lines in the same second.
type stamp struct {
	sec  int64
	loc  *time.Location
	date []byte // "2006-01-02T15:04:05"
	zone []byte // "Z" or "-07:00"
}

func newAccessLog(w io.Writer) *accessLog {
	if w == nil {
		return nil
	}
	return &accessLog{w: w, bufs: sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}}
}

// accessEntry is what one line records. Path is the canonical path (for
// a target refused with 400, the path as sent), never the query string
// (tokens live there); no line holds a cookie.
type accessEntry struct {
	Time     time.Time
	Method   string
	Host     string
	Path     string
	Status   int
	Bytes    int64
	Duration time.Duration
	Info     *reqInfo
}

// write encodes e and hands the line to the writer in one Write call, so
// lines from concurrent requests never interleave.
func (l *accessLog) write(e *accessEntry) {
	bp := l.bufs.Get().(*[]byte)
	b := appendAccessLine((*bp)[:0], e, &l.stamp)
	_, _ = l.w.Write(b)
	if cap(b) <= 64<<10 { // a huge line (a long path) is not kept around
		*bp = b
		l.bufs.Put(bp)
	}
}

// appendAccessLine appends e as one JSON object and a newline.
func appendAccessLine(b []byte, e *accessEntry, cache *atomic.Pointer[stamp]) []byte {
	b = append(b, `{"time":"`...)
	b = appendTime(b, e.Time, cache)
	b = append(b, `","level":"INFO","msg":"access","method":`...)
	b = appendJSONString(b, e.Method)
	b = append(b, `,"host":`...)
	b = appendJSONString(b, e.Host)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, e.Path)
	status := e.Status
	if status == 0 {
		status = http.StatusOK
	}
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.Bytes, 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendInt(b, int64(e.Duration), 10)
	b = append(b, `,"ip":"`...)
	if e.Info.client.IsValid() {
		b = e.Info.client.AppendTo(b) // digits, dots, colons and hex: nothing to escape
	} else {
		b = append(b, "invalid IP"...)
	}
	b = append(b, `","user":`...)
	if u := e.Info.user; u != nil {
		b = appendJSONString(b, u.Username)
	} else {
		b = append(b, `""`...)
	}
	b = append(b, `,"rule":`...)
	if r := e.Info.decision.Rule; r != nil {
		// The rule's file name comes from the operator and may hold
		// anything a path can; the common plain one is copied as is.
		start := len(b)
		b = r.Source.AppendTo(append(b, '"'))
		if plainASCII(b[start+1:]) {
			b = append(b, '"')
		} else {
			b = appendJSONString(b[:start], r.Source.String())
		}
	} else {
		b = append(b, `""`...)
	}
	return append(b, "}\n"...)
}

// appendTime appends t as time.RFC3339Nano does, reusing the cached
// formatting of t's second.
func appendTime(b []byte, t time.Time, cache *atomic.Pointer[stamp]) []byte {
	sec := t.Unix()
	st := cache.Load()
	if st == nil || st.sec != sec || st.loc != t.Location() {
		whole := t.Truncate(time.Second)
		st = &stamp{sec: sec, loc: t.Location(),
			date: whole.AppendFormat(nil, "2006-01-02T15:04:05"), zone: whole.AppendFormat(nil, "Z07:00")}
		cache.Store(st)
	}
	b = append(b, st.date...)
	if ns := t.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i > 0; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, st.zone...)
}

// appendJSONString appends s as a JSON string the way slog's JSON handler
// does: quotes, backslashes and control characters escaped, each invalid
// UTF-8 byte as \ufffd, and U+2028/U+2029 escaped for JavaScript readers.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			default:
				b = append(b, `\u00`...)
				b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// plainASCII reports whether b needs no JSON escaping and is valid UTF-8.
func plainASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"
