// Package logging builds the zap logger of every switchboard process (the
// daemon, xmlapi, telsim), so that their logs share one shape: JSON lines
// with RFC 3339 nanosecond times for collectors, or console text for a
// terminal; the caller on every line; a stack trace from DPanic up; and a
// "svc" field naming the process. Messages are constant; data travels in
// typed fields.
package logging

import (
	"errors"
	"io"
	"os"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Config says what New builds.
type Config struct {
	// Service is the value of the "svc" field of every line.
	Service string
	// Level is debug, info, warn or error (zap's level names); "" is info.
	Level string
	// Format is json (the default when ""), console, or auto: console when
	// the writer is a terminal, else json.
	Format string
}

// Option adds to what New builds.
type Option func(*options)

type options struct {
	sampled func(zapcore.Entry, zapcore.SamplingDecision)
}

// Sampled turns sampling on: per message and second, the first 100 lines are
// written, then every 100th, so a hot-path message storm cannot flood the
// log. hook, if not nil, runs for every sampled entry on the logging
// goroutine (the daemon counts the dropped lines with it); it must only
// count.
func Sampled(hook func(zapcore.Entry, zapcore.SamplingDecision)) Option {
	return func(o *options) {
		if hook == nil {
			hook = func(zapcore.Entry, zapcore.SamplingDecision) {}
		}
		o.sampled = hook
	}
}

// New builds a logger writing to w, at c.Level, which the returned
// AtomicLevel changes at run time.
func New(c Config, w io.Writer, opts ...Option) (*zap.Logger, zap.AtomicLevel, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	level := c.Level
	if level == "" {
		level = "info"
	}
	lvl, err := zap.ParseAtomicLevel(level)
	if err != nil {
		return nil, lvl, err
	}
	var enc zapcore.Encoder
	if c.Format == "console" || (c.Format == "auto" && IsTerminal(w)) {
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.RFC3339NanoTimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)
	if o.sampled != nil {
		core = zapcore.NewSamplerWithOptions(core, 1e9, 100, 100, zapcore.SamplerHook(o.sampled))
	}
	l := zap.New(core, zap.AddCaller(), zap.AddStacktrace(zap.DPanicLevel))
	if c.Service != "" {
		l = l.With(zap.String("svc", c.Service))
	}
	return l, lvl, nil
}

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Sync flushes l, ignoring the errors stderr gives when it is a terminal or
// a pipe.
func Sync(l *zap.Logger) error {
	err := l.Sync()
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTTY) || errors.Is(err, io.ErrClosedPipe) {
		return nil
	}
	return err
}
