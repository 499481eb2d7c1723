package keygen

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func testBinding(digits int, node NodeConfig) Binding {
	return Binding{Digits: digits, Node: node, Fingerprint: FingerprintOf(testSecret)}
}

func openStore(t *testing.T, dir string, opts ...Option) *FileStore {
	t.Helper()
	s, err := NewFileStore(dir, opts...)
	if err != nil {
		t.Fatalf("NewFileStore: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestFileStoreLeasePersists(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	p, err := s.Create(ctx, testBinding(9, NodeConfig{Count: 1}))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Created || p.Lo != 0 || p.Hi != 900_000_000 || p.Next != 0 {
		t.Fatalf("first Bind = %+v", p)
	}
	var end uint64
	for i := range 3 {
		start, e, err := s.Lease(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		if start != uint64(i)*100 || e != start+100 {
			t.Fatalf("lease %d = [%d, %d)", i, start, e)
		}
		end = e
	}
	fi, err := os.Stat(filepath.Join(dir, StateFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v, mode %v", err, fi.Mode())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := s.Lease(ctx, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Lease after Close = %v", err)
	}

	s2 := openStore(t, dir)
	p, err = s2.Bind(ctx, testBinding(9, NodeConfig{Count: 1}))
	if err != nil {
		t.Fatal(err)
	}
	if p.Created || p.Next != end {
		t.Fatalf("Bind after restart = %+v, want Next %d", p, end)
	}
	if start, _, err := s2.Lease(ctx, 10); err != nil || start != end {
		t.Fatalf("Lease after restart = %d, %v; want start %d", start, err, end)
	}
	// Binding again with the same binding is a no-op; with another, an error.
	if _, err := s2.Bind(ctx, testBinding(9, NodeConfig{Count: 1})); err != nil {
		t.Fatalf("re-Bind: %v", err)
	}
	if _, err := s2.Bind(ctx, testBinding(10, NodeConfig{Count: 1})); err == nil {
		t.Fatal("re-Bind to another binding accepted")
	}
}

func TestFileStoreLocked(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	if _, err := NewFileStore(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second store on one directory: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	openStore(t, dir) // the lock was released
}

func TestFileStoreNotBoundAndArgs(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	if _, _, err := s.Lease(ctx, 1); !errors.Is(err, ErrNotBound) {
		t.Fatalf("Lease before Bind = %v", err)
	}
	if _, err := s.Bind(ctx, testBinding(5, NodeConfig{Count: 1})); err == nil {
		t.Fatal("Bind accepted 5 digits")
	}
	if _, err := s.Bind(ctx, testBinding(9, NodeConfig{ID: 2, Count: 2})); err == nil {
		t.Fatal("Bind accepted node 2 of 2")
	}
	if _, err := s.Create(ctx, testBinding(9, NodeConfig{Count: 1})); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Lease(ctx, 0); err == nil {
		t.Fatal("Lease(0) accepted")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	s.sem <- struct{}{} // another lease in progress
	if _, _, err := s.Lease(cctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lease with a cancelled context while busy = %v", err)
	}
	<-s.sem
	if _, err := NewFileStore(""); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("NewFileStore(\"\") = %v", err)
	}
}

func TestFileStoreExhaustion(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	node := NodeConfig{ID: 5, Count: MaxNodes} // 13 or 14 counters
	lo, hi := NodePartition(6, node)
	s := openStore(t, dir)
	if _, err := s.Create(ctx, testBinding(6, node)); err != nil {
		t.Fatal(err)
	}
	next := lo
	for next < hi {
		start, end, err := s.Lease(ctx, 5)
		if err != nil {
			t.Fatal(err)
		}
		if start != next || end > hi || end-start > 5 || (end-start < 5 && end != hi) {
			t.Fatalf("lease [%d, %d) at %d in [%d, %d)", start, end, next, lo, hi)
		}
		next = end
	}
	if _, _, err := s.Lease(ctx, 5); !errors.Is(err, ErrExhausted) {
		t.Fatalf("lease past the end = %v, want ErrExhausted", err)
	}
	_ = s.Close()
	s2 := openStore(t, dir)
	if p, err := s2.Bind(ctx, testBinding(6, node)); err != nil || p.Next != hi {
		t.Fatalf("Bind after exhaustion = %+v, %v", p, err)
	}
	if _, _, err := s2.Lease(ctx, 1); !errors.Is(err, ErrExhausted) {
		t.Fatalf("lease after restart = %v, want ErrExhausted", err)
	}
}

func TestFileStoreCorruptState(t *testing.T) {
	ctx := context.Background()
	good := fileState{b: testBinding(9, NodeConfig{ID: 1, Count: 3}), lo: 300_000_000, hi: 600_000_000, next: 300_004_096}
	enc := good.encode()
	if got, err := decodeState(enc); err != nil || got != good {
		t.Fatalf("decode(encode) = %+v, %v", got, err)
	}
	want := "switchboard keygen lease state v1\ndigits 9\nnode 1 3\nfingerprint " + good.b.Fingerprint.String() +
		"\nlo 300000000\nhi 600000000\nnext 300004096\ncrc32c "
	if !strings.HasPrefix(string(enc), want) {
		t.Fatalf("state file format changed:\n%s", enc)
	}
	corrupt := map[string][]byte{
		"empty":        nil,
		"truncated":    enc[:len(enc)/2],
		"bit flip":     flipByte(enc, strings.Index(string(enc), "next")+6),
		"no crc":       enc[:strings.Index(string(enc), "crc32c")],
		"garbage":      []byte("hello\n"),
		"extra field":  reencode(strings.Replace(string(enc[:strings.Index(string(enc), "crc32c")]), "next 300004096", "next 300004096 1", 1)),
		"bad range":    fileState{b: good.b, lo: 0, hi: 600_000_000, next: 5}.encode(),
		"next past hi": fileState{b: good.b, lo: 300_000_000, hi: 600_000_000, next: 600_000_001}.encode(),
	}
	for name, data := range corrupt {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, StateFile), data, 0o600); err != nil {
				t.Fatal(err)
			}
			s := openStore(t, dir)
			if _, err := s.Bind(ctx, good.b); !errors.Is(err, ErrStateCorrupt) {
				t.Fatalf("Bind = %v, want ErrStateCorrupt", err)
			}
		})
	}
}

func flipByte(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x01
	return c
}

// reencode appends a valid checksum line to body.
func reencode(body string) []byte {
	return fmt.Appendf([]byte(body), "crc32c %08x\n", crc32.Checksum([]byte(body), castagnoli))
}

func TestFileStoreBindingChanged(t *testing.T) {
	ctx := context.Background()
	base := testBinding(9, NodeConfig{Count: 1})
	other := base
	other.Fingerprint[0] ^= 1
	changes := map[string]Binding{
		"secret": other,
		"digits": testBinding(10, NodeConfig{Count: 1}),
		"node":   testBinding(9, NodeConfig{ID: 0, Count: 2}),
	}
	for name, b := range changes {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			if _, err := s.Create(ctx, base); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Lease(ctx, 10); err != nil {
				t.Fatal(err)
			}
			_ = s.Close()
			s2 := openStore(t, dir)
			_, err := s2.Bind(ctx, b)
			if !errors.Is(err, ErrBindingChanged) || !strings.Contains(err.Error(), "would reissue keys") {
				t.Fatalf("Bind with a changed %s = %v, want ErrBindingChanged", name, err)
			}
			// Refused, not rewritten: the original binding still works.
			_ = s2.Close()
			s3 := openStore(t, dir)
			if p, err := s3.Bind(ctx, base); err != nil || p.Next != 10 {
				t.Fatalf("original binding after refusal: %+v, %v", p, err)
			}
		})
	}
	t.Run("unused directory is rebound", func(t *testing.T) {
		dir := t.TempDir()
		s := openStore(t, dir)
		if _, err := s.Create(ctx, base); err != nil {
			t.Fatal(err)
		}
		_ = s.Close()
		s2 := openStore(t, dir)
		p, err := s2.Bind(ctx, other)
		if err != nil || !p.Rebound || p.Next != 0 {
			t.Fatalf("rebinding an unused directory = %+v, %v", p, err)
		}
	})
}

func TestFileStoreFaults(t *testing.T) {
	ctx := context.Background()
	faults := []struct {
		op  string
		err syscall.Errno
	}{
		{opCreate, syscall.EROFS},
		{opWrite, syscall.ENOSPC},
		{opSync, syscall.EIO},
		{opClose, syscall.EIO},
		{opRename, syscall.EIO},
		{opSyncDir, syscall.EIO},
		{opRemove, syscall.EROFS},
	}
	for _, f := range faults {
		t.Run(f.op+"/"+f.err.Error(), func(t *testing.T) {
			dir := t.TempDir()
			fsys := newFaultFS()
			s := openStore(t, dir, WithFS(fsys))
			b := testBinding(9, NodeConfig{Count: 1})
			if _, err := s.Create(ctx, b); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Lease(ctx, 100); err != nil {
				t.Fatal(err)
			}
			fsys.set(f.op, f.err)
			if f.op == opRemove {
				// Remove only fails for a stale temporary file; leave one.
				if err := os.WriteFile(filepath.Join(dir, StateFile+".tmp"), []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			for range 3 {
				if _, _, err := s.Lease(ctx, 100); !errors.Is(err, f.err) {
					t.Fatalf("Lease with %s failing = %v, want %v", f.op, err, f.err)
				}
			}
			fsys.clear()
			start, end, err := s.Lease(ctx, 100)
			if err != nil {
				t.Fatalf("Lease after the fault cleared: %v", err)
			}
			if start != 100 {
				t.Fatalf("Lease after recovery starts at %d, want 100 (failed leases hand out nothing)", start)
			}
			_ = s.Close()
			// The durable mark covers every granted lease.
			s2 := openStore(t, dir)
			p, err := s2.Bind(ctx, b)
			if err != nil || p.Next != end {
				t.Fatalf("after restart: %+v, %v; want Next %d", p, err, end)
			}
		})
	}
	t.Run("unreadable state", func(t *testing.T) {
		dir := t.TempDir()
		fsys := newFaultFS()
		s := openStore(t, dir, WithFS(fsys))
		if _, err := s.Create(ctx, testBinding(9, NodeConfig{Count: 1})); err != nil {
			t.Fatal(err)
		}
		_ = s.Close()
		fsys.set(opRead, syscall.EIO)
		s2 := openStore(t, dir, WithFS(fsys))
		if _, err := s2.Bind(ctx, testBinding(9, NodeConfig{Count: 1})); !errors.Is(err, syscall.EIO) {
			t.Fatalf("Bind with an unreadable state = %v", err)
		}
	})
	t.Run("lock and mkdir", func(t *testing.T) {
		fsys := newFaultFS()
		fsys.set(opMkdir, syscall.EROFS)
		if _, err := NewFileStore(filepath.Join(t.TempDir(), "data"), WithFS(fsys)); !errors.Is(err, syscall.EROFS) {
			t.Fatalf("NewFileStore with mkdir failing = %v", err)
		}
		fsys.clear()
		fsys.set(opLock, syscall.ENOLCK)
		if _, err := NewFileStore(t.TempDir(), WithFS(fsys)); !errors.Is(err, syscall.ENOLCK) {
			t.Fatalf("NewFileStore with lock failing = %v", err)
		}
	})
}
