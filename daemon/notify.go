package daemon

import (
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// notifier speaks systemd's sd_notify protocol: one datagram per state
// change to the Unix socket named by $NOTIFY_SOCKET ("@name" for the
// abstract namespace). Without $NOTIFY_SOCKET every call is a no-op, so
// the daemon runs the same with or without systemd. It is implemented here
// (a datagram is all it takes) rather than with go-systemd, to keep the
// dependency count down. It is safe for concurrent use.
type notifier struct {
	log      *zap.Logger
	conn     atomic.Pointer[net.UnixConn] // nil: not under systemd, or closed
	watchdog time.Duration                // WatchdogSec, 0 when off
}

func newNotifier(log *zap.Logger, getenv func(string) string) *notifier {
	n := &notifier{log: log}
	path := getenv("NOTIFY_SOCKET")
	if path == "" {
		return n
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		log.Warn("NOTIFY_SOCKET set but not reachable; systemd notifications off", zap.Error(err))
		return n
	}
	n.conn.Store(c)
	// WATCHDOG_USEC applies to this process only if WATCHDOG_PID is unset
	// or names it.
	if us, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64); err == nil && us > 0 {
		if pid := getenv("WATCHDOG_PID"); pid == "" || pid == strconv.Itoa(syscall.Getpid()) {
			n.watchdog = time.Duration(us) * time.Microsecond
		}
	}
	return n
}

// watchdogInterval is how often to send WATCHDOG=1 (half of WatchdogSec),
// or 0 when systemd's watchdog is off.
func (n *notifier) watchdogInterval() time.Duration { return n.watchdog / 2 }

// send sends one notification ("READY=1", "RELOADING=1\nMONOTONIC_USEC=…").
// Failures are logged, never fatal: systemd going away must not stop the
// daemon.
func (n *notifier) send(state string) {
	c := n.conn.Load()
	if c == nil {
		return
	}
	c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(state)); err != nil {
		n.log.Warn("systemd notification failed", zap.Error(err))
	}
}

func (n *notifier) close() {
	if c := n.conn.Swap(nil); c != nil {
		c.Close()
	}
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, which systemd wants
// with RELOADING=1.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Sec*1e6 + ts.Nsec/1e3
}
