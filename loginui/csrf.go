package loginui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
)

// csrfField is the hidden form field that carries the token.
const csrfField = "csrf"

// csrfToken returns the token for this browser's CSRF cookie, setting a new
// cookie when there is none. The token is an HMAC of the cookie's random
// value: a cross-site form can neither read the cookie nor forge the HMAC.
func (u *UI) csrfToken(w http.ResponseWriter, r *http.Request) string {
	value := ""
	if c, err := r.Cookie(u.csrfCookie); err == nil && len(c.Value) == 43 {
		value = c.Value
	}
	if value == "" {
		var b [32]byte
		_, _ = rand.Read(b[:])
		value = base64.RawURLEncoding.EncodeToString(b[:])
		http.SetCookie(w, &http.Cookie{
			Name: u.csrfCookie, Value: value, Path: "/",
			Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		})
	}
	return u.csrfMAC(value)
}

func (u *UI) csrfMAC(value string) string {
	m := hmac.New(sha256.New, u.csrfKey)
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfOK checks the form's token against the browser's CSRF cookie, in
// constant time.
func (u *UI) csrfOK(r *http.Request) bool {
	c, err := r.Cookie(u.csrfCookie)
	if err != nil || c.Value == "" {
		return false
	}
	want := u.csrfMAC(c.Value)
	return hmac.Equal([]byte(r.PostForm.Get(csrfField)), []byte(want))
}
