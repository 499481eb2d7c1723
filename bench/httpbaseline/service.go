package httpbaseline

import "errors"

// Service is a started baseline: a stub on TCP loopback and a daemon on a
// Unix socket that calls it, the shape the benchmark measures.
type Service struct {
	Stub   *Stub
	Daemon *Daemon
}

// Start starts a stub on 127.0.0.1:0 with the default StubConfig and a
// daemon on the Unix socket path with the default Config, calling it.
// Close stops both.
func Start(socket string) (*Service, error) { return StartWith(Config{Socket: socket}) }

// StartWith is Start with the daemon's cfg (its StubURL is filled in).
// Correctness tests use it for an attempt timeout that a loaded machine
// cannot exceed; benchmarks keep the default, the same as switchboard's.
func StartWith(cfg Config) (*Service, error) {
	stub := NewStub(StubConfig{})
	url, err := stub.Start("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cfg.StubURL = url
	d, err := NewDaemon(cfg)
	if err == nil {
		err = d.Start()
	}
	if err != nil {
		_ = stub.Close()
		return nil, err
	}
	return &Service{Stub: stub, Daemon: d}, nil
}

// Close stops the daemon, then the stub. Idempotent.
func (s *Service) Close() error {
	return errors.Join(s.Daemon.Close(), s.Stub.Close())
}
