package daemon

import (
	"sync"
	"testing"
	"time"
)

// stallWatch records when this process was not running: a goroutine that
// sleeps stallTick at a time and notes every wake-up later than
// threshold. On a machine whose cores other work takes (parallel builds,
// the race detector), the process can go unscheduled for longer than a
// test's short deadlines; the daemon's goroutines and its in-process
// simulators are then starved alike, and a healthy tier honestly misses
// its deadline. A test's verdict may excuse a failure that overlapped such
// a stall, and only such a failure: on an idle machine nothing is excused.
type stallWatch struct {
	threshold time.Duration
	stop      chan struct{}
	done      chan struct{}
	mu        sync.Mutex
	stalls    []span
}

// span is a time interval.
type span struct{ from, to time.Time }

const stallTick = time.Millisecond

// watchStalls starts a stallWatch; cleanup stops it.
func watchStalls(t testing.TB, threshold time.Duration) *stallWatch {
	w := &stallWatch{threshold: threshold, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	t.Cleanup(w.close)
	return w
}

func (w *stallWatch) run() {
	defer close(w.done)
	tick := time.NewTicker(stallTick)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
		now := time.Now()
		if now.Sub(last) > w.threshold {
			w.mu.Lock()
			w.stalls = append(w.stalls, span{last, now})
			w.mu.Unlock()
		}
		last = now
	}
}

func (w *stallWatch) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// during reports whether a stall overlapped s, or ended less than after
// before s began (what a stall broke takes that long to mend), and the
// longest that did.
func (w *stallWatch) during(s span, after time.Duration) (bool, time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var longest time.Duration
	for _, st := range w.stalls {
		if st.from.Before(s.to) && s.from.Before(st.to.Add(after)) {
			longest = max(longest, st.to.Sub(st.from))
		}
	}
	return longest > 0, longest
}
