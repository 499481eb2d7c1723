package httpbaseline

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server timeouts, the same for the stub and the daemon: generous enough
// never to fire in a benchmark, present because a real service has them.
const (
	readHeaderTimeout = 5 * time.Second
	idleTimeout       = 90 * time.Second
)

// httpServer owns one http.Server on one listener and the goroutine that
// serves it. close is idempotent and waits for that goroutine.
type httpServer struct {
	srv      *http.Server
	accepted atomic.Uint64 // connections accepted, to show keep-alive works
	done     chan struct{}
	once     sync.Once
}

// serve starts serving h on ln in a goroutine of its own.
func serve(ln net.Listener, h http.Handler) *httpServer {
	s := &httpServer{done: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.accepted.Add(1)
			}
		},
	}
	go func() {
		defer close(s.done)
		// Serve returns http.ErrServerClosed after close; any other error
		// means the listener failed, which close reports no differently.
		_ = s.srv.Serve(ln)
	}()
	return s
}

// close closes the listener and every connection, then waits for the
// serving goroutine. http.Server's per-connection goroutines exit on their
// own once their connection is closed.
func (s *httpServer) close() error {
	var err error
	s.once.Do(func() {
		err = s.srv.Close()
		<-s.done
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	})
	return err
}
