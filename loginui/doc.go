// Package loginui serves the gateway's own pages under /.gatehouse/ and
// owns sessions: the session cookie, sign-in, sign-out, CSRF and the pages
// the proxy shows (forbidden, errors). A session is a server-side record;
// the cookie carries only its signed and encrypted id, so ending the record
// ends the session wherever the cookie was copied. It also serves the
// pages that mail links lead to (registration, email verification,
// password reset, invitations); the mail goes out through a Mailer that
// cmd provides, and no page tells which accounts exist.
package loginui
