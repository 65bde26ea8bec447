package loginui

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"

	"github.com/gatehouse-auth/gatehouse/store"
)

// Values a gorilla session carries between the sign-in handler and Save.
const (
	valueUser     = "user"
	valueRemember = "remember"
)

// deriveKey derives an independent key for one purpose from a secret
// (HKDF-SHA256, RFC 5869).
func deriveKey(secret []byte, purpose string, n int) []byte {
	k, err := hkdf.Key(sha256.New, secret, nil, "gatehouse "+purpose, n)
	if err != nil {
		panic("loginui: hkdf: " + err.Error()) // only for n out of range, a programming error
	}
	return k
}

// newCodecs makes one cookie codec per secret: HMAC-SHA256 and AES-256,
// with the raw session id as the value (no gob: it is slow and allocates).
func newCodecs(secrets [][]byte, maxAge time.Duration) []securecookie.Codec {
	var codecs []securecookie.Codec
	for _, s := range secrets {
		c := securecookie.New(deriveKey(s, "session mac", 32), deriveKey(s, "session aes", 32))
		c.SetSerializer(securecookie.NopEncoder{})
		c.MaxAge(int(maxAge / time.Second))
		c.MaxLength(512)
		codecs = append(codecs, c)
	}
	return codecs
}

// sessionID returns the session id in the request's cookie, or "".
func (u *UI) sessionID(r *http.Request) string {
	value := cookieValue(r.Header, u.cookie)
	if value == "" || len(value) > 512 {
		return ""
	}
	if id, ok := u.decoded.get(value); ok {
		return id
	}
	var id []byte
	if err := securecookie.DecodeMulti(u.cookie, value, &id, u.codecs...); err != nil {
		return ""
	}
	u.decoded.put(value, string(id))
	return string(id)
}

// cookieValue finds a cookie's value in the Cookie headers without
// parsing (and allocating for) every other cookie. A malformed header
// simply yields no value.
func cookieValue(h http.Header, name string) string {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimLeft(part, " \t")
			if len(part) > len(name) && part[len(name)] == '=' && part[:len(name)] == name {
				v := strings.TrimRight(part[len(name)+1:], " \t")
				if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
					v = v[1 : len(v)-1]
				}
				return v
			}
		}
	}
	return ""
}

// decodedCookies remembers cookie values that already passed the MAC
// check and decryption, so a signed-in request skips that work. Only
// values that verified are stored; everything else is checked in full.
// Whether the session is still alive is always asked of the store.
type decodedCookies struct {
	mu sync.RWMutex
	m  map[string]string
}

const maxDecodedCookies = 8192

func (d *decodedCookies) get(value string) (string, bool) {
	d.mu.RLock()
	id, ok := d.m[value]
	d.mu.RUnlock()
	return id, ok
}

func (d *decodedCookies) put(value, id string) {
	d.mu.Lock()
	if d.m == nil || len(d.m) >= maxDecodedCookies {
		d.m = make(map[string]string, 64)
	}
	d.m[value] = id
	d.mu.Unlock()
}

// Authenticate identifies the caller from the session cookie: nil for
// anonymous, a bad or expired cookie, or a disabled, pending (awaiting
// approval) or deleted user. An error only for a technical failure.
func (u *UI) Authenticate(r *http.Request) (*store.User, error) {
	id := u.sessionID(r)
	if id == "" {
		return nil, nil
	}
	s, err := u.db.UseSession(id, u.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	user, err := u.db.User(s.Username)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if user.Disabled || user.Pending {
		return nil, nil
	}
	return &user, nil
}

// sessionStore is a gorilla/sessions Store over the store's session
// records. Every cookie option is set here: the library's defaults
// (SameSite none, 30 days, no HttpOnly) are unsafe.
type sessionStore struct {
	ui *UI
	r  *http.Request // for the client address and user agent of new sessions
}

var _ sessions.Store = (*sessionStore)(nil)

func (u *UI) cookieOptions(remember bool) *sessions.Options {
	o := &sessions.Options{Path: "/", Domain: u.cfg.Domain, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode}
	if remember {
		o.MaxAge = int(u.cfg.RememberMe / time.Second)
	}
	return o
}

// Get returns the request's session (new when it has none), cached per
// request by gorilla's registry.
func (s *sessionStore) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(s, name)
}

// New returns the session the cookie names, or a new empty one.
func (s *sessionStore) New(r *http.Request, name string) (*sessions.Session, error) {
	sess := sessions.NewSession(s, name)
	sess.Options = s.ui.cookieOptions(false)
	sess.IsNew = true
	if id := s.ui.sessionID(r); id != "" {
		if rec, err := s.ui.db.Session(id); err == nil {
			sess.ID, sess.IsNew = id, false
			sess.Values[valueUser] = rec.Username
			sess.Values[valueRemember] = rec.Remember
		}
	}
	return sess, nil
}

// Save writes the session: MaxAge < 0 deletes the record and the cookie;
// a session without an id gets a new record and a new id.
func (s *sessionStore) Save(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	u := s.ui
	if sess.Options.MaxAge < 0 {
		if sess.ID != "" {
			if err := u.db.DeleteSession(sess.ID); err != nil {
				return err
			}
		}
		http.SetCookie(w, sessions.NewCookie(sess.Name(), "", sess.Options))
		return nil
	}
	if sess.ID == "" {
		user, _ := sess.Values[valueUser].(string)
		remember, _ := sess.Values[valueRemember].(bool)
		now := u.now()
		life := u.cfg.Lifetime
		if remember {
			life = u.cfg.RememberMe
		}
		rec := store.Session{
			ID: store.NewSessionID(), Username: user, Created: now, LastSeen: now,
			Expires: now.Add(life), Idle: u.cfg.IdleTimeout, Remember: remember,
			RemoteAddr: u.clientAddr(s.r), UserAgent: truncate(s.r.UserAgent(), 256),
		}
		if remember {
			rec.Idle = 0 // a remembered browser is not signed out for idling
		}
		if err := u.db.CreateSession(rec); err != nil {
			return fmt.Errorf("loginui: creating session: %w", err)
		}
		sess.ID = rec.ID
		sess.Options = u.cookieOptions(remember)
	}
	encoded, err := securecookie.EncodeMulti(sess.Name(), []byte(sess.ID), u.codecs[0])
	if err != nil {
		return fmt.Errorf("loginui: encoding cookie: %w", err)
	}
	http.SetCookie(w, sessions.NewCookie(sess.Name(), encoded, sess.Options))
	return nil
}

func (u *UI) clientAddr(r *http.Request) string {
	if u.clientIP == nil || r == nil {
		return ""
	}
	if ip := u.clientIP(r); ip.IsValid() {
		return ip.String()
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
