package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"switchboard/wire"
)

// target is what the load loops drive: the daemon, through the client.
// Implementations are safe for concurrent use.
type target interface {
	Allocate(ctx context.Context, req *wire.AllocateRequest) (key uint64, tier string, err error)
	Release(ctx context.Context, key uint64) error
}

// loadSpec is the shape of one run's load.
type loadSpec struct {
	rate        float64       // > 0: open loop at this many allocations per second
	concurrency int           // > 0: closed loop with this many workers
	warmup      time.Duration // due before start+warmup: warmup
	duration    time.Duration // load stops being sent at start+warmup+duration
	requests    int64         // cap on allocations, warmup included; 0 = none
	timeout     time.Duration // per allocate and per release
	maxInFlight int           // open loop: cap on allocations in flight
	releasers   int           // release workers
}

// requestFunc builds the allocation request with sequence number seq. It is
// called from many goroutines at once.
type requestFunc func(seq int64) *wire.AllocateRequest

// runner executes one run: the load loop (open or closed), the release
// workers, and nothing else — what is done with the outcomes is the
// observer's business, so reporting, timelines and fault schedules (which
// only need the run's start time and clock) stay out of the loop.
type runner struct {
	spec  loadSpec
	tgt   target
	clk   clock
	obs   observer
	build requestFunc
	// inline sends open-loop requests from the scheduler goroutine instead
	// of one goroutine each: a test seam that makes runs with a fake clock
	// deterministic.
	inline bool
}

// run drives load until the spec's end, its request cap or ctx's end,
// then waits for every allocation in flight and every release, and returns
// when the load stopped being sent. Requests in flight when ctx ends are
// not cancelled: each is bounded by spec.timeout, and what they allocate
// is released.
func (r *runner) run(ctx context.Context, start time.Time) time.Time {
	rel := startReleaser(r.spec.releasers, r.tgt, r.clk, r.obs, r.spec.timeout)
	end := start.Add(r.spec.warmup + r.spec.duration)
	var stopped time.Time
	if r.spec.rate > 0 {
		stopped = r.openLoop(ctx, start, end, rel)
	} else {
		stopped = r.closedLoop(ctx, end, rel)
	}
	rel.close()
	return stopped
}

// intendedTime returns when request i of an open loop at rate is due.
func intendedTime(start time.Time, rate float64, i int64) time.Time {
	return start.Add(time.Duration(float64(i) * float64(time.Second) / rate))
}

// openLoop sends request i at start + i/rate, never later because an
// earlier one is slow: each request runs in its own goroutine (at most
// maxInFlight at once; beyond that, a due request is recorded as
// client_backlog and not sent). When the scheduler itself falls behind,
// due requests go out at once and keep their intended time.
func (r *runner) openLoop(ctx context.Context, start, end time.Time, rel *releaser) time.Time {
	if p, ok := r.clk.(pinner); ok {
		defer p.pin()()
	}
	sem := make(chan struct{}, r.spec.maxInFlight)
	var wg sync.WaitGroup
	stopped := time.Time{}
	for i := int64(0); r.spec.requests == 0 || i < r.spec.requests; i++ {
		intended := intendedTime(start, r.spec.rate, i)
		if !intended.Before(end) {
			stopped = end // ran its course: the offered window is complete
			break
		}
		if err := r.clk.SleepUntil(ctx, intended); err != nil {
			break
		}
		if r.inline {
			r.allocate(i, intended, rel)
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			r.obs.allocation(&outcome{seq: i, intended: intended, done: r.clk.Now(), err: errClientBacklog})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r.allocate(i, intended, rel)
		}()
	}
	if stopped.IsZero() {
		stopped = r.clk.Now()
	}
	wg.Wait()
	return stopped
}

// closedLoop runs spec.concurrency workers, each sending its next request
// when the previous one is answered, until end, the request cap or ctx.
func (r *runner) closedLoop(ctx context.Context, end time.Time, rel *releaser) time.Time {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range r.spec.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				now := r.clk.Now()
				if !now.Before(end) {
					return
				}
				i := next.Add(1) - 1
				if r.spec.requests > 0 && i >= r.spec.requests {
					return
				}
				r.allocate(i, now, rel)
			}
		}()
	}
	wg.Wait()
	return r.clk.Now()
}

// allocate sends allocation seq, due at intended, records its outcome and
// queues its key for release.
func (r *runner) allocate(seq int64, intended time.Time, rel *releaser) {
	req := r.build(seq)
	ctx, cancel := context.WithTimeout(context.Background(), r.spec.timeout)
	o := outcome{seq: seq, intended: intended, sent: r.clk.Now()}
	o.key, o.tier, o.err = r.tgt.Allocate(ctx, req)
	o.done = r.clk.Now()
	cancel()
	r.obs.allocation(&o)
	if o.err == nil {
		rel.push(o.key)
	}
}

// releaser releases keys from a queue with a fixed set of workers, so the
// load loop never waits for a release. The queue is unbounded (its size is
// bounded by the run's allocations). It is safe for concurrent use; close
// waits until the queue is empty and the workers are gone.
type releaser struct {
	tgt     target
	clk     clock
	obs     observer
	timeout time.Duration

	mu     sync.Mutex
	queue  []uint64
	closed bool

	wake chan struct{} // 1-buffered: something was queued
	stop chan struct{} // closed by close: drain, then exit
	wg   sync.WaitGroup
	once sync.Once
}

func startReleaser(workers int, tgt target, clk clock, obs observer, timeout time.Duration) *releaser {
	r := &releaser{tgt: tgt, clk: clk, obs: obs, timeout: timeout, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	for range workers {
		r.wg.Add(1)
		go r.work()
	}
	return r
}

// push queues key for release. It never blocks; after close it panics (a
// bug in the caller: every allocation must have finished before close).
func (r *releaser) push(key uint64) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		panic("sbbench: release queued after the releaser closed")
	}
	r.queue = append(r.queue, key)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *releaser) pop() (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.queue) == 0 {
		return 0, false
	}
	k := r.queue[0]
	r.queue = r.queue[1:]
	if len(r.queue) == 0 {
		r.queue = nil // let the drained backing array go
	}
	return k, true
}

func (r *releaser) work() {
	defer r.wg.Done()
	for {
		if k, ok := r.pop(); ok {
			r.release(k)
			continue
		}
		select {
		case <-r.wake:
		case <-r.stop:
			// Drain what is left, then exit.
			for k, ok := r.pop(); ok; k, ok = r.pop() {
				r.release(k)
			}
			return
		}
	}
}

func (r *releaser) release(key uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	o := outcome{intended: r.clk.Now(), key: key}
	o.sent = o.intended
	o.err = r.tgt.Release(ctx, key)
	o.done = r.clk.Now()
	cancel()
	r.obs.release(&o)
}

// close releases everything queued and waits for the workers. Idempotent.
func (r *releaser) close() {
	r.once.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		close(r.stop)
		r.wg.Wait()
	})
}
