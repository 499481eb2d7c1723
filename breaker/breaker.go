package breaker

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// State is a breaker's state as the request path sees it.
type State int32

// States.
const (
	Closed   State = 0
	HalfOpen State = 1
	Open     State = 2
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return fmt.Sprintf("state(%d)", int32(s))
}

// Override is an operator's decision that replaces the breaker's own.
type Override int32

// Overrides.
const (
	Auto        Override = 0 // the breaker decides
	ForceOpen   Override = 1 // every attempt is refused (ErrForcedOpen)
	ForceClosed Override = 2 // every attempt is admitted and nothing is counted
)

func (o Override) String() string {
	switch o {
	case Auto:
		return "auto"
	case ForceOpen:
		return "open"
	case ForceClosed:
		return "closed"
	}
	return fmt.Sprintf("override(%d)", int32(o))
}

// ParseOverride parses "auto", "open" or "closed".
func ParseOverride(s string) (Override, error) {
	switch s {
	case "auto":
		return Auto, nil
	case "open":
		return ForceOpen, nil
	case "closed":
		return ForceClosed, nil
	}
	return Auto, fmt.Errorf("breaker: unknown override %q (want auto, open or closed)", s)
}

// Errors returned by Allow. All mean "skip this tier"; none is sent anywhere.
var (
	ErrOpen          = errors.New("breaker: open")
	ErrTooManyProbes = errors.New("breaker: half-open, probes in flight")
	ErrForcedOpen    = errors.New("breaker: forced open by an operator")
	// ErrCallerGone marks an attempt that ended because the caller went away
	// (its context was cancelled or its overall deadline passed): the tier is
	// not to blame, so it counts neither as a success nor as a failure.
	ErrCallerGone = errors.New("breaker: caller gone")
)

// Settings tune one breaker. The zero value of each field means its default.
type Settings struct {
	// Failures is how many consecutive failed attempts open the breaker.
	// Default 5.
	Failures uint32
	// OpenFor is how long an open breaker refuses before it lets probes
	// through (half-open). Default 2s.
	OpenFor time.Duration
	// Probes is how many attempts a half-open breaker admits at once; that
	// many consecutive successes close it, any failure re-opens it. Default 1.
	Probes uint32
	// Window is the period after which a closed breaker forgets its counts.
	// Default 10s.
	Window time.Duration
}

// DefaultSettings returns the documented defaults.
func DefaultSettings() Settings {
	return Settings{Failures: 5, OpenFor: 2 * time.Second, Probes: 1, Window: 10 * time.Second}
}

// withDefaults fills zero fields.
func (s Settings) withDefaults() Settings {
	d := DefaultSettings()
	if s.Failures == 0 {
		s.Failures = d.Failures
	}
	if s.OpenFor == 0 {
		s.OpenFor = d.OpenFor
	}
	if s.Probes == 0 {
		s.Probes = d.Probes
	}
	if s.Window == 0 {
		s.Window = d.Window
	}
	return s
}

// Validate reports settings that cannot work.
func (s Settings) Validate() error {
	switch {
	case s.OpenFor < 0:
		return fmt.Errorf("open_for %v: must not be negative", s.OpenFor)
	case s.Window < 0:
		return fmt.Errorf("window %v: must not be negative", s.Window)
	case s.Failures > 1_000_000:
		return fmt.Errorf("failures %d: at most 1000000", s.Failures)
	case s.Probes > 10_000:
		return fmt.Errorf("probes %d: at most 10000", s.Probes)
	}
	return nil
}

// excluded reports whether an attempt's outcome says nothing about the
// tier (Record(NoVerdict)).
func excluded(err error) bool { return errors.Is(err, errNoVerdict) }

// Verdict is what an attempt's outcome says about the tier, when the caller
// has classified the outcome itself (Done.Record).
type Verdict int

// Verdicts.
const (
	// Healthy: the tier answered (a success, or a refusal such as
	// CAPACITY that a working server gives).
	Healthy Verdict = iota
	// Unhealthy: the tier failed, or did not answer in time.
	Unhealthy
	// NoVerdict: the attempt says nothing about the tier: it met a local
	// limit (nothing was sent) or its caller went away. It counts neither
	// way, and a half-open breaker gets its probe slot back.
	NoVerdict
)

var (
	errUnhealthy = errors.New("breaker: attempt failed")
	errNoVerdict = errors.New("breaker: attempt says nothing about the tier")
)

// Done reports an attempt's outcome. Only its first call counts.
type Done struct {
	once *atomic.Bool
	fn   func(error)
}

// report hands the outcome to gobreaker: nil (healthy), errUnhealthy or
// errNoVerdict. Calls after the first are ignored.
func (d Done) report(err error) {
	if d.fn == nil || !d.once.CompareAndSwap(false, true) {
		return
	}
	d.fn(err)
}

// Record reports the attempt's outcome, classified by the caller (the
// breaker never classifies errors itself: the router's one classifier
// does). Only the first Record of a Done counts, so a deferred Record after
// an early one is harmless.
func (d Done) Record(v Verdict) {
	switch v {
	case Healthy:
		d.report(nil)
	case Unhealthy:
		d.report(errUnhealthy)
	default:
		d.report(errNoVerdict)
	}
}

// Breaker is one tier's circuit breaker. It is safe for concurrent use.
type Breaker struct {
	tier     string
	now      func() time.Time
	onChange func(tier string, from, to State)

	cb       atomic.Pointer[gobreaker.TwoStepCircuitBreaker[struct{}]]
	settings atomic.Pointer[Settings]
	// view mirrors the state of the gobreaker of generation view.gen. It
	// is replaced (compare-and-swap, never modified) by the state-change
	// callback of that generation's gobreaker and by install, which starts
	// a new generation; Allow and Skip read it without any lock.
	view     atomic.Pointer[mirror]
	override atomic.Int32
	// installMu serialises install (New, Retune). Never taken by the
	// state-change callback, which runs under gobreaker's lock.
	installMu sync.Mutex

	testHookMirror func() // tests: runs between the callback's read and its swap
}

// mirror is an immutable snapshot of one gobreaker's state.
type mirror struct {
	gen       uint64 // the install that built the gobreaker it mirrors
	state     State
	openUntil int64 // when an open breaker next admits a probe (Unix ns)
}

// Option configures a Breaker.
type Option func(*Breaker)

// WithOnStateChange registers f to be told of state changes. f runs under
// gobreaker's lock: it must only store values or send without blocking.
func WithOnStateChange(f func(tier string, from, to State)) Option {
	return func(b *Breaker) { b.onChange = f }
}

// WithClock replaces time.Now for the mirror's open period (tests).
func WithClock(now func() time.Time) Option { return func(b *Breaker) { b.now = now } }

// New returns a closed breaker for tier.
func New(tier string, s Settings, opts ...Option) *Breaker {
	b := &Breaker{tier: tier, now: time.Now}
	for _, o := range opts {
		o(b)
	}
	b.install(s)
	return b
}

// install builds a gobreaker for s as a new generation. The mirror is
// reset to closed for that generation before the gobreaker can be reached,
// so a state change of the replaced gobreaker that is still being reported
// (its callback raced this install) finds a newer generation and is dropped:
// it can never leave the mirror saying open while gobreaker says closed.
func (b *Breaker) install(s Settings) {
	s = s.withDefaults()
	b.installMu.Lock()
	defer b.installMu.Unlock()
	gen := uint64(1)
	if v := b.view.Load(); v != nil {
		gen = v.gen + 1
	}
	failures := s.Failures
	cb := gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         b.tier,
		MaxRequests:  s.Probes,
		Interval:     s.Window,
		Timeout:      s.OpenFor,
		ReadyToTrip:  func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		IsSuccessful: func(err error) bool { return err == nil },
		IsExcluded:   excluded,
		OnStateChange: func(_ string, from, to gobreaker.State) {
			// Runs under gobreaker's mutex: atomics and the owner's
			// non-blocking hook only. A replaced breaker stays silent.
			b.mirrorChange(gen, fromGo(to), s.OpenFor)
		},
	})
	b.settings.Store(&s)
	// The new gobreaker starts closed: say so, for the new generation.
	closed := &mirror{gen: gen, state: Closed}
	var from State
	for {
		v := b.view.Load()
		from = Closed
		if v != nil {
			from = v.state
		}
		if b.view.CompareAndSwap(v, closed) {
			break
		}
	}
	b.cb.Store(cb)
	if from != Closed && b.onChange != nil {
		b.onChange(b.tier, from, Closed)
	}
}

// mirrorChange records that the gobreaker of generation gen moved to state
// to, unless a newer generation was installed meanwhile.
func (b *Breaker) mirrorChange(gen uint64, to State, openFor time.Duration) {
	next := &mirror{gen: gen, state: to}
	if to == Open {
		next.openUntil = b.now().Add(openFor).UnixNano()
	}
	for {
		v := b.view.Load()
		if v.gen != gen {
			return // replaced by a Retune: its gobreaker speaks for the tier now
		}
		if b.testHookMirror != nil {
			b.testHookMirror()
		}
		if b.view.CompareAndSwap(v, next) {
			if b.onChange != nil {
				b.onChange(b.tier, v.state, to)
			}
			return
		}
	}
}

func fromGo(s gobreaker.State) State {
	switch s {
	case gobreaker.StateOpen:
		return Open
	case gobreaker.StateHalfOpen:
		return HalfOpen
	}
	return Closed
}

// Tier returns the tier's name.
func (b *Breaker) Tier() string { return b.tier }

// Settings returns the settings in force, defaults filled in.
func (b *Breaker) Settings() Settings { return *b.settings.Load() }

// State returns the mirrored state: an atomic load.
func (b *Breaker) State() State { return b.view.Load().state }

// Override returns the operator override in force.
func (b *Breaker) Override() Override { return Override(b.override.Load()) }

// SetOverride installs an operator override.
func (b *Breaker) SetOverride(o Override) { b.override.Store(int32(o)) }

// Retune installs new settings. The breaker restarts closed; the override
// stays.
func (b *Breaker) Retune(s Settings) { b.install(s) }

// Skip reports, at the cost of atomic loads, whether an attempt would surely
// be refused now. It never changes state; Allow is still the gate.
func (b *Breaker) Skip() bool {
	switch Override(b.override.Load()) {
	case ForceOpen:
		return true
	case ForceClosed:
		return false
	}
	v := b.view.Load()
	return v.state == Open && b.now().UnixNano() < v.openUntil
}

var nopDone = Done{}

// Allow asks whether an attempt may go to the tier. On success the caller
// must Report the outcome exactly once (extra Reports are ignored); on error
// the tier is to be skipped and there is nothing to report.
func (b *Breaker) Allow() (Done, error) {
	switch Override(b.override.Load()) {
	case ForceOpen:
		return nopDone, ErrForcedOpen
	case ForceClosed:
		return nopDone, nil
	}
	if v := b.view.Load(); v.state == Open && b.now().UnixNano() < v.openUntil {
		return nopDone, ErrOpen
	}
	done, err := b.cb.Load().Allow()
	if err != nil {
		if errors.Is(err, gobreaker.ErrTooManyRequests) {
			return nopDone, ErrTooManyProbes
		}
		return nopDone, ErrOpen
	}
	return Done{once: new(atomic.Bool), fn: done}, nil
}

// Counts returns gobreaker's counts (takes its mutex; not for the hot path).
func (b *Breaker) Counts() gobreaker.Counts { return b.cb.Load().Counts() }
