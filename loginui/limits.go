package loginui

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ulule/limiter/v3"
	"github.com/ulule/limiter/v3/drivers/store/memory"

	"github.com/gatehouse-auth/gatehouse/store"
)

// Limits protect every form that checks a password. Zero values are the
// documented defaults.
type Limits struct {
	PerIP           limiter.Rate  // sign-in attempts per client address (IPv6 per /64); default 20 a minute
	PerUser         limiter.Rate  // failed attempts per account name; default 5 a minute
	LockoutAttempts int           // consecutive failures that lock an account; default 5, < 0 never
	LockoutWindow   time.Duration // failures further apart than this start a new count; default 15m
	LockoutDuration time.Duration // how long a lock lasts; default 15m (an admin can unlock sooner)
	HashConcurrency int           // password hashes at once; default half the CPUs, at least 1
	HashQueue       int           // sign-ins that may wait for a hashing slot; default 8 per slot
	HashWait        time.Duration // how long one may wait; default 2s, then 503
}

// Errors of a guarded password check.
var (
	// ErrTooManyAttempts: a rate limit is reached; the answer is 429.
	ErrTooManyAttempts = errors.New("loginui: too many attempts")
	// ErrBusy: no hashing slot came free in time; the answer is 503.
	ErrBusy = errors.New("loginui: too many sign-ins at once")
)

// limitError carries when a limit resets, for Retry-After.
type limitError struct{ reset time.Time }

func (e *limitError) Error() string { return ErrTooManyAttempts.Error() }
func (e *limitError) Unwrap() error { return ErrTooManyAttempts }

func (l *Limits) withDefaults() {
	if l.PerIP.Limit == 0 {
		l.PerIP = limiter.Rate{Period: time.Minute, Limit: 20}
	}
	if l.PerUser.Limit == 0 {
		l.PerUser = limiter.Rate{Period: time.Minute, Limit: 5}
	}
	if l.LockoutAttempts == 0 {
		l.LockoutAttempts = 5
	}
	if l.LockoutWindow == 0 {
		l.LockoutWindow = 15 * time.Minute
	}
	if l.LockoutDuration == 0 {
		l.LockoutDuration = 15 * time.Minute
	}
	if l.HashConcurrency <= 0 {
		// Half the cores: a flood of sign-ins must leave CPU for the
		// signed-in traffic the gateway proxies.
		l.HashConcurrency = max(1, runtime.NumCPU()/2)
	}
	if l.HashQueue <= 0 {
		l.HashQueue = 8 * l.HashConcurrency
	}
	if l.HashWait <= 0 {
		l.HashWait = 2 * time.Second
	}
}

// guard is the sign-in protection: two rate limiters and the hashing gate.
type guard struct {
	limits  Limits
	perIP   *limiter.Limiter
	perUser *limiter.Limiter
	slots   chan struct{}
	waiting atomic.Int64
}

func newGuard(l Limits) *guard {
	l.withDefaults()
	return &guard{
		limits:  l,
		perIP:   limiter.New(memory.NewStore(), l.PerIP),
		perUser: limiter.New(memory.NewStore(), l.PerUser),
		slots:   make(chan struct{}, l.HashConcurrency),
	}
}

// ipKey groups IPv6 clients by /64, the block one subscriber usually gets,
// so rotating addresses inside it buys nothing.
func ipKey(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	if !ip.IsValid() {
		return "unknown"
	}
	return ip.String()
}

// allowIP counts a sign-in attempt from ip, or refuses it when the limit
// is used up. Blocking at Remaining == 0 (not Reached) lets no extra try through.
func (g *guard) allowIP(ctx context.Context, ip netip.Addr) error {
	key := ipKey(ip)
	lc, err := g.perIP.Peek(ctx, key)
	if err != nil {
		return err
	}
	if lc.Remaining <= 0 {
		return &limitError{time.Unix(lc.Reset, 0)}
	}
	_, err = g.perIP.Increment(ctx, key, 1)
	return err
}

// userKey is the account an attempt is against: the canonical username
// when the login resolves to a user (so Alice, alice and alice@example.com
// count as one), or the lower-cased login otherwise.
func userKey(u *store.User, login string) string {
	if u != nil {
		return "user:" + u.Username
	}
	return "login:" + strings.ToLower(strings.TrimSpace(login))
}

func (g *guard) allowUser(ctx context.Context, key string) error {
	lc, err := g.perUser.Peek(ctx, key)
	if err != nil {
		return err
	}
	if lc.Remaining <= 0 {
		return &limitError{time.Unix(lc.Reset, 0)}
	}
	return nil
}

func (g *guard) failedUser(ctx context.Context, key string) {
	_, _ = g.perUser.Increment(ctx, key, 1)
}

func (g *guard) succeededUser(ctx context.Context, key string) {
	_, _ = g.perUser.Reset(ctx, key)
}

// acquire takes a hashing slot, waiting at most HashWait behind at most
// HashQueue others; beyond that the sign-in is refused at once.
func (g *guard) acquire(ctx context.Context) error {
	select {
	case g.slots <- struct{}{}:
		return nil
	default:
	}
	if g.waiting.Add(1) > int64(g.limits.HashQueue) {
		g.waiting.Add(-1)
		return ErrBusy
	}
	defer g.waiting.Add(-1)
	t := time.NewTimer(g.limits.HashWait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-t.C:
		return ErrBusy
	case <-ctx.Done():
		return ErrBusy
	}
}

func (g *guard) release() { <-g.slots }
