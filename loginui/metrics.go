package loginui

import "errors"

// Metrics counts sign-in attempts for monitoring; cmd implements it (with
// Prometheus). It must be safe for concurrent use.
type Metrics interface {
	// SignIn is called once per sign-in form that passed the CSRF check,
	// with one of the SignIn result constants.
	SignIn(result string)
}

// Results of a sign-in attempt, as Metrics.SignIn reports them. They tell
// apart what the page deliberately does not (SPEC §8): an operator may
// know that accounts are locked, a caller may not.
const (
	SignInSuccess     = "success"      // the password was right
	SignInFailure     = "failure"      // unknown user, wrong password, disabled or pending account
	SignInLockedOut   = "locked_out"   // the account is locked, whatever the password
	SignInRateLimited = "rate_limited" // 429: too many attempts from the address or against the account
	SignInBusy        = "busy"         // 503: no hashing slot came free in time
	SignInError       = "error"        // 500: the store failed
)

// SignInResults lists every result, for implementations that prepare
// their counters in advance.
var SignInResults = []string{SignInSuccess, SignInFailure, SignInLockedOut, SignInRateLimited, SignInBusy, SignInError}

// countSignIn reports the result of a guarded password check.
func (u *UI) countSignIn(err error) {
	if u.metrics == nil {
		return
	}
	result := SignInError
	switch {
	case err == nil:
		result = SignInSuccess
	case errors.Is(err, errLockedOut):
		result = SignInLockedOut
	case errors.Is(err, ErrSignInFailed):
		result = SignInFailure
	case errors.Is(err, ErrTooManyAttempts):
		result = SignInRateLimited
	case errors.Is(err, ErrBusy):
		result = SignInBusy
	}
	u.metrics.SignIn(result)
}

// Hashing reports the password-hashing gate (Limits.HashConcurrency and
// HashQueue): how many hashes run now and how many sign-ins wait for a slot.
func (u *UI) Hashing() (inUse, waiting int) {
	return len(u.guard.slots), int(u.guard.waiting.Load())
}
