package daemon

import (
	"os"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"switchboard/internal/logging"
)

// NewLogger builds the daemon's zap logger from the log section: JSON unless
// format is console (or auto and w is a terminal), level adjustable at run
// time through the returned AtomicLevel, sampling on (100 per second per
// message, then every 100th) so a hot-path message storm cannot flood the
// log. Messages are constant; data travels in typed fields. Every line the
// sampler drops is counted (switchboard_log_dropped_total), so that a quiet
// log during a storm does not read as a quiet daemon.
func NewLogger(c LogConfig, w *os.File) (*zap.Logger, zap.AtomicLevel, error) {
	return logging.New(logging.Config{Service: "switchboard", Level: c.Level, Format: c.Format}, w, logging.Sampled(countSampled))
}

// logDropped counts, by level, the log lines the sampler of every logger
// NewLogger built dropped. It is process-wide, like the logger (one per
// process: stderr); every daemon's registry exports it as
// switchboard_log_dropped_total.
var logDropped [zapcore.FatalLevel - zapcore.DebugLevel + 1]atomic.Uint64

// countSampled is the sampler's hook: it runs for every sampled entry, on
// the logging goroutine, so it only adds.
func countSampled(e zapcore.Entry, d zapcore.SamplingDecision) {
	if d&zapcore.LogDropped != 0 && e.Level >= zapcore.DebugLevel && e.Level <= zapcore.FatalLevel {
		logDropped[e.Level-zapcore.DebugLevel].Add(1)
	}
}
