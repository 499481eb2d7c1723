package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"go.uber.org/zap"

	"switchboard/breaker"
	"switchboard/internal/unixsock"
)

// Status is a snapshot of a running daemon for operators (sbctl status,
// GET /status on the admin socket). It is a plain value owned by the caller.
type Status struct {
	Instance      string         `json:"instance"`
	Socket        string         `json:"socket"`
	ConfigVersion uint64         `json:"config_version"`
	Started       time.Time      `json:"started"`
	UptimeSeconds float64        `json:"uptime_seconds"`
	InFlight      int64          `json:"in_flight"`
	KeysIssued    uint64         `json:"keys_issued"`
	KeysLeft      uint64         `json:"keys_left"`
	Keys          KeysStatus     `json:"keys"`
	Orphans       int            `json:"orphans_pending"`
	Stranded      int            `json:"orphans_stranded"` // of Orphans, held by a server no tier has now: kept
	LastReload    *ReloadOutcome `json:"last_reload,omitempty"`
	Tiers         []TierStatus   `json:"tiers"`
}

// TierStatus is one tier in Status, in failover order.
type TierStatus struct {
	Name      string         `json:"name"`
	Breaker   string         `json:"breaker"`  // closed, half-open, open
	Override  string         `json:"override"` // auto, open, closed
	Drained   bool           `json:"drained"`
	Available bool           `json:"available"` // would take a new allocation now
	Live      int            `json:"live"`      // live connections
	Dialing   int            `json:"dialing"`
	Draining  int            `json:"draining"`
	InFlight  int            `json:"in_flight"`
	Servers   []ServerStatus `json:"servers"`
}

// ServerStatus is one telephony server of a tier in Status.
type ServerStatus struct {
	Addr      string `json:"addr"`
	ServerID  string `json:"server_id,omitempty"`
	Live      int    `json:"live"`
	Dialing   int    `json:"dialing"`
	Draining  int    `json:"draining"`
	InFlight  int    `json:"in_flight"`
	LastError string `json:"last_error,omitempty"`
}

// Status returns a snapshot of the running daemon (ErrNotRunning before
// Ready or after Run returned).
func (d *Daemon) Status() (Status, error) {
	if !d.up.Load() {
		return Status{}, ErrNotRunning
	}
	cfg := d.cfg.Load()
	ks := d.keys.Stats()
	rs := d.rt.Stats()
	now := d.now()
	st := Status{
		Instance: cfg.Instance, Socket: cfg.Socket, ConfigVersion: d.version.Load(),
		Started: d.started, UptimeSeconds: now.Sub(d.started).Seconds(),
		InFlight: d.srv.Stats().InFlight, KeysIssued: ks.Issued, KeysLeft: ks.Left, Keys: d.keysStatus(ks),
		Orphans: rs.Orphans, Stranded: rs.Stranded, LastReload: d.last.Load(), Tiers: []TierStatus{},
	}
	for _, t := range d.rt.Tiers() {
		ps := t.Pool.Stats()
		ts := TierStatus{Name: t.Name, Breaker: t.Breaker.State().String(), Override: t.Breaker.Override().String(),
			Drained: t.Ctl.Drained.Load(), Available: t.Available(), Live: ps.Live, InFlight: ps.InFlight}
		for _, s := range ps.Servers {
			ts.Dialing += s.Dialing
			ts.Draining += s.Draining
			ts.Servers = append(ts.Servers, ServerStatus{Addr: s.Addr, ServerID: s.ServerID, Live: s.Live,
				Dialing: s.Dialing, Draining: s.Draining, InFlight: s.InFlight, LastError: s.LastError})
		}
		st.Tiers = append(st.Tiers, ts)
	}
	return st, nil
}

func (d *Daemon) tier(name string) (*tier, error) {
	if !d.up.Load() {
		return nil, ErrNotRunning
	}
	for _, t := range d.rt.Tiers() {
		if t.Name == name {
			return t, nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownTier, name)
}

// Drain sets (true) or clears (false) the operator's drain switch of a
// tier: a drained tier takes no new allocation; lookups, updates and
// releases of its sessions still reach it. The switch survives reloads.
func (d *Daemon) Drain(tierName string, drained bool) error {
	t, err := d.tier(tierName)
	if err != nil {
		return err
	}
	if t.Ctl.Drained.Swap(drained) != drained {
		d.log.Warn("tier drain switch changed by an operator", zap.String("tier", tierName), zap.Bool("drained", drained))
	}
	return nil
}

// SetBreaker installs an operator override on a tier's breaker: ForceOpen
// (no attempt goes to the tier), ForceClosed (every attempt does, nothing
// is counted) or Auto. The override survives reloads.
func (d *Daemon) SetBreaker(tierName string, o breaker.Override) error {
	t, err := d.tier(tierName)
	if err != nil {
		return err
	}
	if prev := t.Breaker.Override(); prev != o {
		t.Breaker.SetOverride(o)
		d.log.Warn("breaker override changed by an operator", zap.String("tier", tierName),
			zap.Stringer("from", prev), zap.Stringer("to", o))
	}
	return nil
}

// AdminAddr returns the admin socket's address once Ready, or nil without
// one.
func (d *Daemon) AdminAddr() net.Addr {
	if d.admin == nil {
		return nil
	}
	return d.admin.ln.Addr()
}

// MetricsAddr returns the metrics endpoint's address once Ready, or nil
// without one.
func (d *Daemon) MetricsAddr() net.Addr {
	if d.msrv == nil {
		return nil
	}
	return d.msrv.addr()
}

// adminServer serves the control API over HTTP on a Unix socket with mode
// 0600: only the daemon's user (and root) may operate it. Run owns its
// goroutine; shutdown stops it and waits.
type adminServer struct {
	hs   *http.Server
	ln   net.Listener
	path string
	done chan struct{}
}

// adminTimeout bounds one admin request; a reload waits for warm pools
// (server.ready_timeout) and the drain of retired ones.
const adminTimeout = time.Minute

func startAdmin(log *zap.Logger, d *Daemon, path string) (*adminServer, error) {
	ln, err := unixsock.Listen(path, 0o600)
	if err != nil {
		return nil, err
	}
	a := &adminServer{ln: ln, path: path, done: make(chan struct{})}
	a.hs = &http.Server{Handler: d.adminHandler(), ReadHeaderTimeout: 5 * time.Second, ErrorLog: zap.NewStdLog(log)}
	go func() {
		defer close(a.done)
		if err := a.hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server stopped", zap.Error(err))
		}
	}()
	return a, nil
}

func (a *adminServer) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := a.hs.Shutdown(ctx); err != nil {
		a.hs.Close()
	}
	<-a.done
	os.Remove(a.path)
}

// adminError is the JSON body of a failed admin request.
type adminError struct {
	Error string `json:"error"`
}

// adminHandler is the admin API. Every answer is JSON except pprof and
// the log level handler's own format.
func (d *Daemon) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st, err := d.Status()
		if err != nil {
			writeAdminErr(w, err)
			return
		}
		writeAdminJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
		defer cancel()
		if err := d.ReloadFromSource(ctx); err != nil {
			writeAdminErr(w, err)
			return
		}
		writeAdminJSON(w, http.StatusOK, map[string]any{"ok": true, "config_version": d.version.Load()})
	})
	drain := func(on bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			name := r.PathValue("tier")
			if err := d.Drain(name, on); err != nil {
				writeAdminErr(w, err)
				return
			}
			writeAdminJSON(w, http.StatusOK, map[string]any{"tier": name, "drained": on})
		}
	}
	mux.HandleFunc("POST /drain/{tier}", drain(true))
	mux.HandleFunc("POST /undrain/{tier}", drain(false))
	mux.HandleFunc("POST /breaker/{tier}/{mode}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("tier")
		o, err := breaker.ParseOverride(r.PathValue("mode"))
		if err != nil {
			writeAdminJSON(w, http.StatusBadRequest, adminError{Error: err.Error()})
			return
		}
		if err := d.SetBreaker(name, o); err != nil {
			writeAdminErr(w, err)
			return
		}
		writeAdminJSON(w, http.StatusOK, map[string]any{"tier": name, "override": o.String()})
	})
	mux.HandleFunc("GET /fleet", func(w http.ResponseWriter, r *http.Request) {
		ms, err := d.Fleet(r.Context())
		if errors.Is(err, ErrNoFleet) {
			writeAdminJSON(w, http.StatusNotFound, adminError{Error: err.Error()})
			return
		}
		if err != nil {
			writeAdminErr(w, err)
			return
		}
		writeAdminJSON(w, http.StatusOK, ms)
	})
	if d.level != nil {
		mux.Handle("/log/level", d.level)
	}
	// pprof on this mux, never on http.DefaultServeMux.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func writeAdminErr(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrUnknownTier):
		code = http.StatusNotFound
	case errors.Is(err, ErrConfig):
		code = http.StatusBadRequest
	case errors.Is(err, ErrRequiresRestart):
		code = http.StatusConflict
	case errors.Is(err, ErrNotRunning), errors.Is(err, ErrNotWarm):
		code = http.StatusServiceUnavailable
	case errors.Is(err, ErrNoSource):
		code = http.StatusNotImplemented
	}
	writeAdminJSON(w, code, adminError{Error: err.Error()})
}

func writeAdminJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
