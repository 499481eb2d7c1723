package main

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// progressEvery is how often the progress line is redrawn.
const progressEvery = 250 * time.Millisecond

// progress is the observer that draws one line on a terminal while a run
// goes on: elapsed/measured seconds, allocations ok, overloaded and
// failed. It only counts (two atomic adds per allocation: nothing on the
// hot path waits for it); a goroutine it owns redraws the line, and stop
// ends that goroutine and erases the line, so the summary that follows
// prints on a clean terminal. A nil *progress does nothing.
type progress struct {
	w     io.Writer
	label string

	ok, shed, errs atomic.Int64

	from     time.Time
	duration time.Duration
	done     chan struct{}
	wg       sync.WaitGroup
}

// newProgress returns a progress line on w when w is a terminal (a
// character device), else nil: piped or redirected output never gets it.
// label prefixes the line (a scenario's phase), or is empty.
func newProgress(w io.Writer, label string) *progress {
	if !isTerminal(w) {
		return nil
	}
	return &progress{w: w, label: label}
}

func (p *progress) allocation(o *outcome) {
	switch {
	case o.intended.Before(p.from):
		// warmup
	case isOverloaded(o.err):
		p.shed.Add(1)
	case o.err != nil:
		p.errs.Add(1)
	default:
		p.ok.Add(1)
	}
}

func (p *progress) release(*outcome) {}

// start begins redrawing; from is the end of warmup, duration the measured
// window.
func (p *progress) start(from time.Time, duration time.Duration) {
	if p == nil {
		return
	}
	p.from, p.duration = from, duration
	p.done = make(chan struct{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				fmt.Fprint(p.w, "\r\033[K")
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
}

func (p *progress) draw() {
	el := max(time.Since(p.from), 0).Truncate(100 * time.Millisecond)
	prefix := ""
	if p.label != "" {
		prefix = p.label + "  "
	}
	fmt.Fprintf(p.w, "\r\033[K%s%v/%v  ok %d  overloaded %d  errors %d", prefix, min(el, p.duration), p.duration,
		p.ok.Load(), p.shed.Load(), p.errs.Load())
}

// stop ends the redrawing and erases the line. Safe on nil and to call
// more than once after start.
func (p *progress) stop() {
	if p == nil || p.done == nil {
		return
	}
	close(p.done)
	p.wg.Wait()
	p.done = nil
}
