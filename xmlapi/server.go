package xmlapi

import (
	"context"
	"errors"
	"net"
	"net/http"

	"go.uber.org/zap"

	"switchboard/internal/httpbound"
)

// NewServer returns an http.Server that serves h at Path, and GET
// HealthPath when h is a *Handler, with cfg's header, read, write and idle
// limits. Other paths get 404. Its error log
// goes to log at warn level (net/http logs TLS and protocol errors there,
// never request bodies).
func NewServer(cfg *Config, h http.Handler, log *zap.Logger) *http.Server {
	if log == nil {
		log = zap.NewNop()
	}
	mux := http.NewServeMux()
	mux.Handle(Path, h)
	if xh, ok := h.(*Handler); ok {
		mux.Handle("GET "+HealthPath, serveHealth(xh))
	}
	errLog, err := zap.NewStdLogAt(log.Named("http"), zap.WarnLevel)
	if err != nil { // only for an invalid level: a programming error
		panic(err)
	}
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		MaxHeaderBytes:    cfg.HTTP.MaxHeaderBytes,
		ErrorLog:          errLog,
	}
}

// MaxConns bounds the connections the XML server holds open at once: at
// the bound a new connection is still served and the one idle the longest
// (between requests, or silent for a second since accept) is closed for
// it; when every one has a request in progress, the new one waits in the
// kernel's backlog until one ends (internal/httpbound). Each costs a
// goroutine, a descriptor and its buffers.
const MaxConns = 4096

// Serve serves srv on ln, at most MaxConns connections at once (it sets
// srv.ConnState), until ctx ends, then shuts down gracefully: it stops
// accepting and waits for the requests in flight, at most
// cfg.HTTP.ShutdownTimeout, before closing what remains. It returns nil
// after a clean shutdown, and when it returns no goroutine of srv is left
// serving.
func Serve(ctx context.Context, cfg *Config, srv *http.Server, ln net.Listener) error {
	ln = httpbound.Bound(srv, ln, MaxConns)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err // the listener failed
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		srv.Close()
	}
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
