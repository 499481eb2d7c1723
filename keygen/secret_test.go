package keygen

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestSecretGeneratedAndReused(t *testing.T) {
	dir := t.TempDir()
	mustInit(t, Config{Dir: dir, Digits: 6, BlockSize: 16})
	g, err := New(Config{Dir: dir, Digits: 6, BlockSize: 16}, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, SecretFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	secret, err := DecodeSecret(data)
	if err != nil || len(secret) != GeneratedSecretLen {
		t.Fatalf("secret file: %q, %v", data, err)
	}
	if g.Permutation().Fingerprint() != FingerprintOf(secret) {
		t.Fatal("generator does not use the stored secret")
	}
	k1, err := g.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}

	g2, err := New(Config{Dir: dir, Digits: 6, BlockSize: 16}, nil)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer g2.Close()
	if g2.Permutation().Fingerprint() != FingerprintOf(secret) {
		t.Fatal("restart generated a new secret")
	}
	c1, _ := g2.Permutation().Counter(k1)
	if c1 != 0 {
		t.Fatalf("first key maps back to counter %d under the reloaded secret, want 0", c1)
	}
}

func TestSecretFileRefused(t *testing.T) {
	valid := EncodeSecret(GenerateSecret())
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string, fsys *faultFS)
		want  error
		msg   string
	}{
		{"mode 0644", func(t *testing.T, dir string, _ *faultFS) {
			writeFileMode(t, filepath.Join(dir, SecretFile), valid, 0o644)
		}, ErrSecret, "chmod 600"},
		{"mode 0640", func(t *testing.T, dir string, _ *faultFS) {
			writeFileMode(t, filepath.Join(dir, SecretFile), valid, 0o640)
		}, ErrSecret, "must be 0600"},
		{"mode 0602", func(t *testing.T, dir string, _ *faultFS) {
			writeFileMode(t, filepath.Join(dir, SecretFile), valid, 0o602)
		}, ErrSecret, "must be 0600"},
		{"unreadable", func(t *testing.T, dir string, fsys *faultFS) {
			writeFileMode(t, filepath.Join(dir, SecretFile), valid, 0o600)
			fsys.set(opRead, syscall.EACCES)
		}, syscall.EACCES, "cannot read"},
		{"stat fails", func(t *testing.T, dir string, fsys *faultFS) {
			fsys.set(opStat, syscall.EIO)
		}, syscall.EIO, "cannot stat"},
		{"a directory", func(t *testing.T, dir string, _ *faultFS) {
			if err := os.Mkdir(filepath.Join(dir, SecretFile), 0o700); err != nil {
				t.Fatal(err)
			}
		}, ErrSecret, "not a regular file"},
		{"not hex", func(t *testing.T, dir string, _ *faultFS) {
			writeFileMode(t, filepath.Join(dir, SecretFile), []byte("not a secret\n"), 0o600)
		}, ErrSecret, "not hex"},
		{"too short", func(t *testing.T, dir string, _ *faultFS) {
			writeFileMode(t, filepath.Join(dir, SecretFile), []byte("00112233\n"), 0o600)
		}, ErrSecret, "at least 16"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			fsys := newFaultFS()
			tc.setup(t, dir, fsys)
			g, err := New(Config{Dir: dir}, nil, WithFS(fsys))
			if err == nil {
				g.Close()
				t.Fatal("New accepted the secret file")
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("New = %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
			// The failed New released the directory.
			openStore(t, dir)
		})
	}
}

func writeFileMode(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask
		t.Fatal(err)
	}
}

func TestSecretMultiNodeNeverGenerated(t *testing.T) {
	dir := t.TempDir()
	_, err := Init(Config{Dir: dir, Node: NodeConfig{ID: 1, Count: 2}}, nil, 0)
	if !errors.Is(err, ErrSecret) || !strings.Contains(err.Error(), "share one secret") {
		t.Fatalf("Init without a secret on node 1 of 2 = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, SecretFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a per-node secret was generated")
	}
	// A provisioned secret file works.
	writeFileMode(t, filepath.Join(dir, SecretFile), EncodeSecret(testSecret), 0o600)
	mustInit(t, Config{Dir: dir, Digits: 6, BlockSize: 8, Node: NodeConfig{ID: 1, Count: 2}})
	g, err := New(Config{Dir: dir, Digits: 6, BlockSize: 8, Node: NodeConfig{ID: 1, Count: 2}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.Permutation().Fingerprint() != FingerprintOf(testSecret) {
		t.Fatal("provisioned secret not used")
	}
}

func TestChangedSecretOrDigitsRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, Digits: 6, BlockSize: 8, Secret: testSecret}
	mustInit(t, cfg)
	g, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.Close()

	other := append([]byte(nil), testSecret...)
	other[3] ^= 0x40
	changed := map[string]Config{
		"secret": {Dir: dir, Digits: 6, BlockSize: 8, Secret: other},
		"digits": {Dir: dir, Digits: 7, BlockSize: 8, Secret: testSecret},
		"node":   {Dir: dir, Digits: 6, BlockSize: 8, Secret: testSecret, Node: NodeConfig{ID: 0, Count: 2}},
	}
	for name, c := range changed {
		t.Run(name, func(t *testing.T) {
			g, err := New(c, nil)
			if err == nil {
				g.Close()
				t.Fatal("changed key space accepted")
			}
			if !errors.Is(err, ErrBindingChanged) || !strings.Contains(err.Error(), "would reissue keys") {
				t.Fatalf("New = %v, want ErrBindingChanged", err)
			}
		})
	}
	// Dropping the configured secret: New never generates one, and names
	// the lost secret.
	if g, err := New(Config{Dir: dir, Digits: 6, BlockSize: 8}, nil); err == nil {
		g.Close()
		t.Fatal("start without the secret accepted")
	} else if !errors.Is(err, ErrSecret) || !strings.Contains(err.Error(), "secret it was created with is lost") {
		t.Fatalf("New without the secret = %v, want ErrSecret", err)
	}
	if _, err := os.Stat(filepath.Join(dir, SecretFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused start stored a secret")
	}
	g, err = New(cfg, nil)
	if err != nil {
		t.Fatalf("original config after refusals: %v", err)
	}
	g.Close()
}

func TestStateMissingRefused(t *testing.T) {
	dir := t.TempDir()
	mustInit(t, Config{Dir: dir, Digits: 6, BlockSize: 8})
	g, err := New(Config{Dir: dir, Digits: 6, BlockSize: 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	if err := os.Remove(filepath.Join(dir, StateFile)); err != nil {
		t.Fatal(err)
	}
	_, err = New(Config{Dir: dir, Digits: 6, BlockSize: 8}, nil)
	if !errors.Is(err, ErrStateMissing) {
		t.Fatalf("New with the state file deleted = %v, want ErrStateMissing", err)
	}
	if _, err := os.Stat(filepath.Join(dir, StateFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused start recreated the state file")
	}
	// Init refuses too: the generated secret outlived its lease state.
	if _, err := Init(Config{Dir: dir, Digits: 6, BlockSize: 8}, nil, 0); !errors.Is(err, ErrStateMissing) {
		t.Fatalf("Init next to a generated secret without state = %v, want ErrStateMissing", err)
	}
	if _, err := os.Stat(filepath.Join(dir, StateFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused Init recreated the state file")
	}
}

// TestFirstStartCrashBeforeSecretStored: Init records the binding, then
// storing the new secret fails (as a crash would leave it). No key was
// issued, so the daemon refuses to start (no secret) and Init, run again,
// may generate another secret and rebind.
func TestFirstStartCrashBeforeSecretStored(t *testing.T) {
	dir := t.TempDir()
	fsys := &secretWriteFault{faultFS: newFaultFS()}
	if _, err := Init(Config{Dir: dir, Digits: 6, BlockSize: 8}, nil, 0, WithFS(fsys)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Init with the secret write failing = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, StateFile)); err != nil {
		t.Fatalf("binding not recorded: %v", err)
	}
	if _, err := New(Config{Dir: dir, Digits: 6, BlockSize: 8}, nil); !errors.Is(err, ErrSecret) {
		t.Fatalf("start after the interrupted Init = %v, want ErrSecret", err)
	}
	if p := mustInit(t, Config{Dir: dir, Digits: 6, BlockSize: 8}); !p.Rebound || !p.Created {
		t.Fatalf("second Init: partition %+v, want Created and Rebound", p)
	}
	g, err := New(Config{Dir: dir, Digits: 6, BlockSize: 8}, nil)
	if err != nil {
		t.Fatalf("start after the second Init: %v", err)
	}
	defer g.Close()
	if _, err := g.Next(); err != nil {
		t.Fatal(err)
	}
}

// secretWriteFault fails creating the secret's temporary file only.
type secretWriteFault struct{ *faultFS }

func (f *secretWriteFault) CreateExcl(name string, perm os.FileMode) (File, error) {
	if filepath.Base(name) == SecretFile+".tmp" {
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.ENOSPC}
	}
	return f.faultFS.CreateExcl(name, perm)
}
