package grpcpeer

import (
	"runtime"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Options selects grpc-go's configuration, for every hop of the peer (its
// client, its front and its stubs alike).
type Options struct {
	// Tuned applies the settings a team tuning for throughput would: see
	// serverOptions and dialOptions. False: grpc-go's defaults throughout.
	Tuned bool
}

// Tuned values, each chosen for this workload: small unary messages (an
// allocation is about 450 bytes of request and 150 of answer), up to 32
// concurrent streams per connection (64 callers on 2 connections), local
// hops only.
const (
	// tunedWindow is the fixed HTTP/2 flow-control window, per stream and
	// per connection. Setting it turns off grpc-go's BDP estimator, whose
	// PINGs and window updates buy nothing on a local hop whose messages
	// never come close to the default 64 KiB window; 1 MiB is never the
	// limit for 32 streams of 450 bytes, so no stream ever waits for a
	// WINDOW_UPDATE.
	tunedWindow = 1 << 20
	// tunedBuffer is the read and write buffer of each connection. The
	// default 32 KiB already holds one burst of 32 requests (about 20 KiB
	// with HTTP/2 framing); 64 KiB lets a reader take two bursts per read
	// syscall and the writer coalesce more frames per flush under load.
	tunedBuffer = 64 << 10
)

// serverOptions returns a server's options. Tuned:
//
//   - NumStreamWorkers(GOMAXPROCS): a fixed set of goroutines serves the
//     streams instead of a new goroutine per call (grpc-go's own
//     recommendation for many short unary calls); one per core is the
//     number that can run at once.
//   - Shared write buffers (a connection's write buffer taken from a pool
//     for a flush and given back after it, so idle connections hold none):
//     what grpc.SharedWriteBuffer(true) asked for is grpc-go's default in
//     v1.85 (the option is deprecated), so both configurations have it and
//     the tuned one does not repeat it.
//   - InitialWindowSize, InitialConnWindowSize: fixed (tunedWindow).
//   - ReadBufferSize, WriteBufferSize: tunedBuffer.
func serverOptions(o Options) []grpc.ServerOption {
	if !o.Tuned {
		return nil
	}
	return []grpc.ServerOption{
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
		grpc.InitialWindowSize(tunedWindow),
		grpc.InitialConnWindowSize(tunedWindow),
		grpc.ReadBufferSize(tunedBuffer),
		grpc.WriteBufferSize(tunedBuffer),
	}
}

// dialOptions returns a client connection's options: plaintext (local hops,
// as switchboard's) and, tuned, the client's side of serverOptions (fixed
// windows, buffer sizes; shared write buffers are the default here too, and
// grpc-go has no stream workers on the client side).
func dialOptions(o Options) []grpc.DialOption {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if !o.Tuned {
		return opts
	}
	return append(opts,
		grpc.WithInitialWindowSize(tunedWindow),
		grpc.WithInitialConnWindowSize(tunedWindow),
		grpc.WithReadBufferSize(tunedBuffer),
		grpc.WithWriteBufferSize(tunedBuffer),
	)
}
