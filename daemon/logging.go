package daemon

import (
	"errors"
	"io"
	"os"
	"sync/atomic"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// NewLogger builds the daemon's zap logger from the log section: JSON unless
// format is console (or auto and w is a terminal), level adjustable at run
// time through the returned AtomicLevel, sampling on (100 per second per
// message, then every 100th) so a hot-path message storm cannot flood the
// log. Messages are constant; data travels in typed fields. Every line the
// sampler drops is counted (switchboard_log_dropped_total), so that a quiet
// log during a storm does not read as a quiet daemon.
func NewLogger(c LogConfig, w *os.File) (*zap.Logger, zap.AtomicLevel, error) {
	lvl, err := zap.ParseAtomicLevel(c.Level)
	if err != nil {
		return nil, lvl, err
	}
	console := c.Format == "console" || (c.Format == "auto" && isTerminal(w))
	var enc zapcore.Encoder
	if console {
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.RFC3339NanoTimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	}
	core := zapcore.NewSamplerWithOptions(zapcore.NewCore(enc, zapcore.Lock(w), lvl), 1e9, 100, 100,
		zapcore.SamplerHook(countSampled))
	return zap.New(core, zap.AddCaller(), zap.AddStacktrace(zap.DPanicLevel)).With(zap.String("svc", "switchboard")), lvl, nil
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// SyncLogger flushes l, ignoring the errors stderr gives when it is a
// terminal or a pipe.
func SyncLogger(l *zap.Logger) error {
	err := l.Sync()
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTTY) || errors.Is(err, io.ErrClosedPipe) {
		return nil
	}
	return err
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
