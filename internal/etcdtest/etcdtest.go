package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/goleak"
)

// readyTimeout bounds how long Start waits for the member to serve (about
// a second normally; generous for a loaded CI machine).
const readyTimeout = 60 * time.Second

// Server is one etcd member on 127.0.0.1.
type Server struct {
	dir, log           string
	clientURL, peerURL url.URL

	mu sync.Mutex
	e  *embed.Etcd // nil while stopped
}

// Start starts a member with its data in a new t.TempDir() and stops it
// when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{dir: t.TempDir()}
	s.log = filepath.Join(t.TempDir(), "etcd.log")
	s.clientURL = url.URL{Scheme: "http", Host: freeAddr(t)}
	s.peerURL = url.URL{Scheme: "http", Host: freeAddr(t)}
	if err := s.Start(); err != nil {
		t.Fatalf("etcd: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Endpoint returns the client URL (http://127.0.0.1:port).
func (s *Server) Endpoint() string { return s.clientURL.String() }

// Start (re)starts the member on its data directory and ports and waits
// until it serves. Starting a running member is a no-op.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.e != nil {
		return nil
	}
	cfg := embed.NewConfig()
	cfg.Name = "etcdtest"
	cfg.Dir = s.dir
	cfg.ListenClientUrls = []url.URL{s.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{s.clientURL}
	cfg.ListenPeerUrls = []url.URL{s.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{s.peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// etcd logs the listeners it closes on Stop as errors: keep its log
	// next to its data, out of the test output.
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{s.log}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return err
	case <-time.After(readyTimeout):
		e.Close()
		return fmt.Errorf("not ready after %v", readyTimeout)
	}
	s.e = e
	return nil
}

// Stop stops the member (its data stays). Idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.e != nil {
		s.e.Close()
		s.e = nil
	}
}

// IgnoreLeaks is the goleak option for goroutines that etcd's server and
// client libraries leave behind by design after Close (process-wide
// workers started once, gRPC's resolver and balancer callbacks that end
// shortly after).
func IgnoreLeaks() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
	}
}
