package loginui

import (
	_ "embed"
	"fmt"
	"strings"
	"unicode/utf8"
)

// commonPasswords is the 10,000 most common passwords of 8 characters or
// more, lower case, one a line, sorted bytewise, every line ending in a
// newline. From zxcvbn's frequency list through the Go module
// github.com/trustelem/zxcvbn v1.0.1 (MIT; Dropbox's zxcvbn, MIT):
// commonpasswords.LICENSE says how it was made and carries the notice.
//
//go:embed commonpasswords.txt
var commonPasswords string

// Password policy bounds, after NIST SP 800-63B §3.1.1.2: a minimum
// length, a generous maximum, no composition rules, and a blocklist.
const (
	defaultPasswordMinLength = 8
	// maxNewPassword is in characters (runes). At 4 bytes a rune at most
	// it stays within maxPassword bytes, so every password the policy
	// accepts can be typed at the sign-in form.
	maxNewPassword = 256
)

// passwordError is a password refused by the policy. Its text is shown
// to the user as it is.
type passwordError string

func (e passwordError) Error() string { return string(e) }

// Messages a refused new password gets.
const (
	msgPasswordEmpty    = passwordError("Enter a new password.")
	msgPasswordTooLong  = passwordError("Use at most 256 characters.")
	msgPasswordMismatch = passwordError("The new password and its confirmation do not match.")
	msgPasswordCommon   = passwordError("This password is too common and easy to guess. Choose another one.")
	msgPasswordIsName   = passwordError("Do not use your username or email address as your password.")
	msgPasswordEncoding = passwordError("The password contains characters that cannot be used.")
	msgPasswordTooShort = "Use at least %d characters."
)

// passwordMinLength is the configured minimum; NIST's 8 when unset or lower.
func (c Config) passwordMinLength() int {
	return min(max(c.PasswordMinLength, defaultPasswordMinLength), maxNewPassword)
}

// checkNewPassword applies the password policy to a new password and its
// confirmation, for the account with this username and email ("" for
// none): at least minLen characters (runes; values below 8 count as 8), at
// most 256, not one of the most common passwords (ignoring case), not the
// username or email address, and the confirmation equal. No composition
// rules (SP 800-63B). A refusal is an error whose text the form shows.
func checkNewPassword(pw, confirm, username, email string, minLen int) error {
	minLen = min(max(minLen, defaultPasswordMinLength), maxNewPassword)
	if pw == "" {
		return msgPasswordEmpty
	}
	if !utf8.ValidString(pw) {
		return msgPasswordEncoding
	}
	n := utf8.RuneCountInString(pw)
	if n < minLen {
		return passwordError(fmt.Sprintf(msgPasswordTooShort, minLen))
	}
	if n > maxNewPassword {
		return msgPasswordTooLong
	}
	lower := strings.ToLower(pw)
	for _, name := range []string{username, email} {
		if name = strings.ToLower(strings.TrimSpace(name)); name != "" && strings.TrimSpace(lower) == name {
			return msgPasswordIsName
		}
	}
	if isCommonPassword(lower) {
		return msgPasswordCommon
	}
	if pw != confirm {
		return msgPasswordMismatch
	}
	return nil
}

// isCommonPassword reports whether pw, lower-cased, is on the embedded
// list. It binary-searches the sorted text in place: no table to build,
// no allocation.
func isCommonPassword(pw string) bool {
	pw = strings.ToLower(pw)
	s := commonPasswords
	lo, hi := 0, len(s) // both always at the start of a line
	for lo < hi {
		mid := lo + (hi-lo)/2
		start := lo + strings.LastIndexByte(s[lo:mid], '\n') + 1
		end := strings.IndexByte(s[start:], '\n')
		if end < 0 {
			return false // a list without its final newline: not ours
		}
		end += start
		switch c := strings.Compare(pw, s[start:end]); {
		case c == 0:
			return true
		case c < 0:
			hi = start
		default:
			lo = end + 1
		}
	}
	return false
}
