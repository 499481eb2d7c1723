package route

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"switchboard/internal/atomicfile"
)

// OrphanJournalName is the orphan journal's file in the data directory.
const OrphanJournalName = "orphans.journal"

// orphanJournal keeps the orphan queue in the data directory, so that a
// restart — graceful or a crash — forgets neither a reservation that may
// hold a bridge nor a RELEASE the front end was told had succeeded (a
// deferred release is an acknowledged one).
//
// It is an append-only text file, one record per line: "+ TIER KEY SERVER ."
// when an orphan is queued, "- TIER KEY SERVER ." once its server confirmed
// the release (or it was given up). SERVER is the HELLO id of the server
// holding the reservation, URL-path-escaped (so it has no space); a record
// without it ("+ TIER KEY .", as journals written before server ids were
// recorded have, and as crash recovery writes) means "server unknown:
// release on every server of TIER". The final "." makes a record cut short
// by a crash or a failed write unreadable, rather than readable as a
// shorter key. Opening replays it and rewrites it with only what is still
// pending; a sweep compacts it again once it holds far more records than
// pending orphans. Appends are plain write(2)s, not fsynced: they survive the
// daemon's crash or kill (the kernel holds them), not the host's power loss
// — orphans are failure-path events, and an fsync per failed-over request in
// an outage storm would stall the very requests that are failing over. For
// the same reason a sweep's compaction does not fsync either (it runs under
// the queue's lock, which failing-over requests take); the compactions at
// open and close do.
//
// The keygen FileStore's flock on the data directory guarantees one daemon
// per journal. Not safe for concurrent use: the orphans queue calls it
// under its mutex.
type orphanJournal struct {
	path    string
	f       *os.File
	records int  // records in the file
	torn    bool // a write failed: the file may end inside a record
	buf     []byte
}

// openOrphanJournal replays the journal in dir (if any), rewrites it with
// the orphans still pending, and opens it for appending. bad counts the
// lines it could not read (a torn last line after a crash is not counted:
// it is the record being written when the process died).
func openOrphanJournal(dir string) (j *orphanJournal, pending []orphan, bad int, err error) {
	path := filepath.Join(dir, OrphanJournalName)
	pending, bad, err = replayOrphans(path)
	if err != nil {
		return nil, nil, 0, err
	}
	j = &orphanJournal{path: path}
	if err := j.compact(pending, true); err != nil {
		return nil, nil, 0, err
	}
	return j, pending, bad, nil
}

// replayOrphans reads a journal: the orphans added and not yet done, in the
// order they were first added.
func replayOrphans(path string) (pending []orphan, bad int, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("orphan journal: %w", err)
	}
	if i := bytes.LastIndexByte(b, '\n'); i < len(b)-1 {
		b = b[:i+1] // a torn last record
	}
	live := map[orphan]int{} // orphan -> index in order
	var order []orphan
	for line := range bytes.Lines(b) {
		op, or, ok := parseOrphanRecord(bytes.TrimSuffix(line, []byte("\n")))
		if !ok {
			bad++
			continue
		}
		switch op {
		case '+':
			if _, dup := live[or]; !dup {
				live[or] = len(order)
				order = append(order, or)
			}
		case '-':
			delete(live, or)
		}
	}
	for i, or := range order {
		if j, ok := live[or]; ok && j == i {
			pending = append(pending, or)
		}
	}
	return pending, bad, nil
}

func parseOrphanRecord(line []byte) (op byte, or orphan, ok bool) {
	f := bytes.Fields(line)
	if (len(f) != 4 && len(f) != 5) || string(f[len(f)-1]) != "." || len(f[0]) != 1 || (f[0][0] != '+' && f[0][0] != '-') || !ValidName(string(f[1])) {
		return 0, orphan{}, false
	}
	key, err := strconv.ParseUint(string(f[2]), 10, 64)
	if err != nil {
		return 0, orphan{}, false
	}
	or = orphan{tier: string(f[1]), key: key}
	if len(f) == 5 {
		if or.server, err = url.PathUnescape(string(f[3])); err != nil || or.server == "" {
			return 0, orphan{}, false
		}
	}
	return f[0][0], or, true
}

func (j *orphanJournal) append(op byte, or orphan) error {
	if j.f == nil {
		return os.ErrClosed
	}
	j.buf = j.buf[:0]
	if j.torn {
		// End the partial record a failed write may have left, so that
		// it and not this one is the line replay skips.
		j.buf = append(j.buf, '\n')
	}
	j.buf = append(j.buf, op, ' ')
	j.buf = append(j.buf, or.tier...)
	j.buf = append(j.buf, ' ')
	j.buf = appendOrphanTail(j.buf, or)
	j.records++
	if _, err := j.f.Write(j.buf); err != nil {
		j.torn = true
		return err
	}
	j.torn = false
	return nil
}

// appendOrphanTail appends "KEY SERVER .\n" (or "KEY .\n" without a
// server).
func appendOrphanTail(b []byte, or orphan) []byte {
	b = strconv.AppendUint(b, or.key, 10)
	if or.server != "" {
		b = append(b, ' ')
		b = append(b, url.PathEscape(or.server)...)
	}
	return append(b, " .\n"...)
}

// add records a queued orphan.
func (j *orphanJournal) add(or orphan) error { return j.append('+', or) }

// done records an orphan released or given up.
func (j *orphanJournal) done(or orphan) error { return j.append('-', or) }

// wantsCompaction tells whether the file holds many more records than the
// pending orphans it describes.
func (j *orphanJournal) wantsCompaction(pending int) bool {
	return j.records > 4*pending+4096
}

// compact replaces the journal with one "+" record per pending orphan,
// written aside and renamed over; with sync, the new file and then the
// directory are fsynced too. The file written aside is the one appended to
// afterwards, so nothing has to be opened after the rename: once the rename
// is done the journal is the new file, whatever happens next.
func (j *orphanJournal) compact(pending []orphan, sync bool) error {
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("orphan journal: compact: %w", err)
	}
	w := bufio.NewWriter(f)
	for _, or := range pending {
		j.buf = append(j.buf[:0], "+ "...)
		j.buf = append(j.buf, or.tier...)
		j.buf = append(j.buf, ' ')
		j.buf = appendOrphanTail(j.buf, or)
		w.Write(j.buf)
	}
	err = w.Flush()
	if err == nil && sync {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, j.path)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("orphan journal: compact: %w", err)
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, j.records, j.torn = f, len(pending), false
	if sync {
		if err := syncDir(filepath.Dir(j.path)); err != nil {
			return fmt.Errorf("orphan journal: compact: %w", err)
		}
	}
	return nil
}

// close fsyncs and closes the journal.
func (j *orphanJournal) close() error {
	if j.f == nil {
		return nil
	}
	err := j.f.Sync()
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	j.f = nil
	return err
}

func syncDir(dir string) error {
	return atomicfile.SyncDir(dir)
}
