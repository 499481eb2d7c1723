package grpcpeer

import "errors"

// Service is a started peer in one process: a stub per tier on TCP
// loopback (Tiers, in order) and a front on a Unix socket that calls them.
// Tests use it; the benchmark runs each part as its own process
// (cmd/peerbench).
type Service struct {
	Stubs []*Stub
	Front *Front
}

// Start starts a stub per tier of Tiers on 127.0.0.1:0 and a front on the
// Unix socket path calling them, all with grpc-go configured by o. cfg's
// Socket and Tiers are filled in; its other fields are the front's.
// Close stops everything.
func Start(cfg Config, o Options) (*Service, error) {
	svc := &Service{}
	cfg.Tiers = nil
	cfg.Options = o
	for _, name := range Tiers {
		st := NewStub(StubConfig{Tier: name, Options: o})
		addr, err := st.Start("127.0.0.1:0")
		if err != nil {
			_ = svc.Close()
			return nil, err
		}
		svc.Stubs = append(svc.Stubs, st)
		cfg.Tiers = append(cfg.Tiers, TierConfig{Name: name, Addr: addr})
	}
	f, err := NewFront(cfg)
	if err == nil {
		svc.Front = f
		err = f.Start()
	}
	if err != nil {
		_ = svc.Close()
		return nil, err
	}
	return svc, nil
}

// Close stops the front, then the stubs. Idempotent.
func (s *Service) Close() error {
	var errs []error
	if s.Front != nil {
		errs = append(errs, s.Front.Close())
	}
	for _, st := range s.Stubs {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}
