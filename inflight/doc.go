// Package inflight is the durable record of allocations in flight: which
// RESERVEs the daemon has sent (or is about to send) and which answers it has
// not yet handed to the kernel for its client.
//
// Why: the telephony server executes a RESERVE whether or not its answer
// comes back. If the daemon dies between sending a RESERVE and writing the
// answer to its client, the server holds a bridge nobody knows about, and the
// client's retry with the same idempotency token reserves a second one. The
// orphan journal cannot cover that window cheaply: it is appended with
// write(2), and a syscall per allocation is too much for the hot path.
//
// How: a fixed table of fixed-size slots in a file of the data directory,
// mapped MAP_SHARED. A store into a shared file mapping is in the kernel's
// page cache the moment the CPU makes it, so it survives the process being
// killed (SIGKILL, a crash) with no syscall at all. It does not survive a
// power loss or a kernel crash of the host: nothing is fsynced on the request
// path, as for the orphan journal.
//
// A slot's life:
//
//	Acquire ─► Intend(token, key, tier) ─► [RESERVE sent] ─► Ack(response) ─► Free
//	               ▲        │                                        (answer written)
//	               └────────┘ a retry on another tier rewrites it
//
// A slot is written body first and header word last; the header word holds
// the state and a CRC-32C of the body, and is stored atomically, so a write
// cut short by the process's death reads as the previous state or as empty,
// never as a wrong record. Intend clears the header before it rewrites the
// body; Ack writes the response into its own region, which the INTENT
// checksum does not cover, so the slot reads as INTENT until the ACKED
// header lands.
//
// Free slots are kept on a lock-free stack of indexes with an ABA tag:
// Acquire and Free are one compare-and-swap each and never allocate. No slot
// free: Acquire fails at once, it never waits.
//
// The first store into a page of a shared file mapping faults (the file
// system readies the page for writing); a goroutine of the table takes
// those faults after Open, in the background, so neither the start nor the
// request path waits for them. Close stops and awaits it.
//
// Open reads what the previous process left (Recovered), rebuilds the file
// with those records in its first slots, and keeps them occupied until the
// caller frees them, so a second crash while they are being handled loses
// nothing either.
package inflight
