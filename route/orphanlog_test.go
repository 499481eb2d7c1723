package route

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestOrphanJournalReplay(t *testing.T) {
	dir := t.TempDir()
	j, pending, bad, err := openOrphanJournal(dir)
	if err != nil || len(pending) != 0 || bad != 0 {
		t.Fatalf("fresh journal: %v %v %d", pending, err, bad)
	}
	a, b, c := orphan{"primary-large", 111, ""}, orphan{"nextgen", 222, ""}, orphan{"primary-large", 333, ""}
	for _, r := range []struct {
		op byte
		or orphan
	}{{'+', a}, {'+', b}, {'+', c}, {'-', b}, {'+', a}, {'-', a}, {'+', a}} {
		if err := j.append(r.op, r.or); err != nil {
			t.Fatal(err)
		}
	}
	// A crash in the middle of a record, and a line that is not one.
	f, err := os.OpenFile(filepath.Join(dir, OrphanJournalName), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("garbage line\n+ nextgen 9\n+ nextgen 99")
	f.Close()
	if err := j.close(); err != nil {
		t.Fatal(err)
	}

	j, pending, bad, err = openOrphanJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	if want := []orphan{c, a}; !slices.Equal(pending, want) || bad != 2 {
		t.Fatalf("replayed %v (bad %d), want %v (bad 2: the garbage, the cut record)", pending, bad, want)
	}
	// Opening compacted the file to the pending orphans.
	b2, _ := os.ReadFile(filepath.Join(dir, OrphanJournalName))
	if string(b2) != "+ primary-large 333 .\n+ primary-large 111 .\n" || j.records != 2 {
		t.Fatalf("compacted journal %q, %d records", b2, j.records)
	}
	if _, err := os.Stat(filepath.Join(dir, OrphanJournalName+".tmp")); !os.IsNotExist(err) {
		t.Fatalf("temporary file left behind: %v", err)
	}
}

func TestOrphanJournalCompactsWhenLong(t *testing.T) {
	dir := t.TempDir()
	j, _, _, err := openOrphanJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	for i := range uint64(3000) {
		j.add(orphan{"nextgen", i, ""})
		j.done(orphan{"nextgen", i, ""})
	}
	if !j.wantsCompaction(0) {
		t.Fatalf("6000 records for 0 pending orphans: no compaction wanted")
	}
	if err := j.compact(nil, true); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(j.path); err != nil || fi.Size() != 0 {
		t.Fatalf("compacted journal: %v %v", fi, err)
	}
	if err := j.add(orphan{"nextgen", 7, ""}); err != nil {
		t.Fatal(err)
	}
}

// TestOrphanJournalAfterFailedWrite: a write that fails may leave part of a
// record; the next record must not be glued to it and lost with it.
func TestOrphanJournalAfterFailedWrite(t *testing.T) {
	dir := t.TempDir()
	j, _, _, err := openOrphanJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	good := j.f
	ro, err := os.Open(j.path) // writes to it fail
	if err != nil {
		t.Fatal(err)
	}
	j.f = ro
	if err := j.add(orphan{"nextgen", 111, ""}); err == nil {
		t.Fatal("a write to a read-only file succeeded")
	}
	ro.Close()
	j.f = good
	good.WriteString("+ nextg") // what the failed write may have left
	if err := j.add(orphan{"nextgen", 222, ""}); err != nil {
		t.Fatal(err)
	}
	j.close()
	j2, pending, bad, err := openOrphanJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j2.close()
	if want := []orphan{{"nextgen", 222, ""}}; !slices.Equal(pending, want) || bad != 1 {
		t.Fatalf("replayed %v (bad %d), want %v (bad 1: the partial record)", pending, bad, want)
	}
}

// TestOrphanJournalServerField: records carry the holding server's id
// (escaped: an id may hold spaces); records without one, as journals
// written before server ids were recorded have, still read, as "server
// unknown"; an orphan with and one without a server are distinct.
func TestOrphanJournalServerField(t *testing.T) {
	dir := t.TempDir()
	old := "+ primary-large 111 .\n+ nextgen 222 .\n- nextgen 222 .\n"
	if err := os.WriteFile(filepath.Join(dir, OrphanJournalName), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	j, pending, bad, err := openOrphanJournal(dir)
	if err != nil || bad != 0 {
		t.Fatalf("old journal: %v, %d bad", err, bad)
	}
	if want := []orphan{{"primary-large", 111, ""}}; !slices.Equal(pending, want) {
		t.Fatalf("old journal replayed %v, want %v", pending, want)
	}
	odd := orphan{"nextgen", 333, "ng 1/b%"}
	for _, r := range []struct {
		op byte
		or orphan
	}{{'+', odd}, {'+', orphan{"nextgen", 444, "ng-a"}}, {'-', orphan{"nextgen", 444, ""}}} {
		if err := j.append(r.op, r.or); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, OrphanJournalName))
	if !strings.Contains(string(b), "+ nextgen 333 ng%201%2Fb%25 .\n") {
		t.Fatalf("journal %q: want the server id escaped", b)
	}
	j, pending, bad, err = openOrphanJournal(dir)
	if err != nil || bad != 0 {
		t.Fatalf("reopen: %v, %d bad", err, bad)
	}
	defer j.close()
	want := []orphan{{"primary-large", 111, ""}, odd, {"nextgen", 444, "ng-a"}}
	if !slices.Equal(pending, want) {
		t.Fatalf("replayed %v, want %v", pending, want)
	}
}
