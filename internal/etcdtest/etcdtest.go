package etcdtest

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
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

// ErrRunning is returned by Backup and Restore on a running member: they
// copy its data directory, which must be at rest.
var ErrRunning = errors.New("etcdtest: stop the member first")

// Backup copies the stopped member's data directory into dst (created, or
// empty): a cold copy of its whole state, revisions included.
func (s *Server) Backup(dst string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.e != nil {
		return ErrRunning
	}
	return copyTree(dst, s.dir)
}

// Restore replaces the stopped member's data directory with src, a copy
// made by Backup: the whole state goes back, the mark and every other key
// with its mod revision, and the cluster's revision with them, as a
// snapshot restored without --bump-revision. Start serves it.
func (s *Server) Restore(src string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.e != nil {
		return ErrRunning
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(s.dir, e.Name())); err != nil {
			return err
		}
	}
	return copyTree(s.dir, src)
}

// copyTree copies the files and directories under src into dst, keeping
// their permissions (etcd wants its directories private).
func copyTree(dst, src string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(to, info.Mode().Perm())
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, data, info.Mode().Perm())
	})
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

// BackupCold stops the member, copies its data directory into dst (Backup)
// and starts it again, failing the test on error: the cold copy a restore
// test takes back to later.
func (s *Server) BackupCold(t testing.TB, dst string) {
	t.Helper()
	s.Stop()
	if err := s.Backup(dst); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
}

// RestoreCold stops the member, puts src (a copy of BackupCold or Backup)
// back (Restore) and starts it, failing the test on error: etcd goes back
// in time, revisions included.
func (s *Server) RestoreCold(t testing.TB, src string) {
	t.Helper()
	s.Stop()
	if err := s.Restore(src); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
}
