package export

// Recovery of the persistent queue at start: its segments and
// acknowledgements are read back, torn tails cut off and damaged records
// skipped (see pqueue.go for the layout).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// open reads the queue's files, queues every unacknowledged record again
// (oldest first), starts a new segment for appends and the group commit.
// A torn record at the end of a file is cut off; a damaged record with data
// after it is reported with its file and offset, and the file is cut there
// after its rest is copied aside to <file>.corrupt-<offset>.
func (q *pqueue) open() (restored, error) {
	var r restored
	if err := os.MkdirAll(q.dir, 0o700); err != nil {
		return r, fmt.Errorf("create export queue directory: %w", err)
	}
	if err := os.Chmod(q.dir, 0o700); err != nil {
		return r, fmt.Errorf("export queue directory: %w", err)
	}
	entries, err := os.ReadDir(q.dir)
	if err != nil {
		return r, fmt.Errorf("read export queue directory: %w", err)
	}
	var ids []uint64
	segIDs := map[uint64]bool{}
	// New segments take ids above every file's, set-aside ones included,
	// so a name is never used twice.
	var next uint64 = 1
	for _, de := range entries {
		name := de.Name()
		if len(name) > 20 && name[20] == '.' {
			if id, err := strconv.ParseUint(name[:20], 10, 64); err == nil {
				next = max(next, id+1)
			}
		}
		if id, ok := parseName(name, segExt); ok {
			ids = append(ids, id)
			segIDs[id] = true
		}
	}
	// Remove acknowledgement files whose segment is gone: a crash between
	// the two removals of a finished segment leaves one.
	for _, de := range entries {
		if id, ok := parseName(de.Name(), ackExt); ok && !segIDs[id] {
			_ = os.Remove(filepath.Join(q.dir, de.Name()))
		}
	}
	// ReadDir sorts by name and names are zero-padded: ids ascend.
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, id := range ids {
		s, recs, err := q.loadSegment(id)
		if err != nil {
			q.closeFilesLocked()
			return restored{}, err
		}
		if s.live == 0 {
			q.removeSegmentFiles(s)
			continue
		}
		q.segs = append(q.segs, s)
		q.used += s.size + s.ackSize
		for _, rec := range recs {
			q.waiting = append(q.waiting, rec)
			q.pending += rec.spans
			q.pendingBytes += rec.size
			q.held += rec.spans
			q.live++
			r.batches++
			r.spans += rec.spans
			r.bytes += int64(rec.size)
			if rec.flags&flagError != 0 {
				r.errorBatches++
			}
		}
	}
	if err := q.addSegmentLocked(next); err != nil {
		q.closeFilesLocked()
		return restored{}, err
	}
	if err := syncDir(q.dir); err != nil {
		q.closeFilesLocked()
		return restored{}, err
	}
	q.dirDirty = false
	q.opened = true
	if q.m != nil {
		q.m.requeued.Add(float64(r.batches))
	}
	if r.batches > 0 {
		q.signal()
	}
	if q.fsyncInterval > 0 {
		go q.syncLoop()
	} else {
		close(q.syncDone)
	}
	return r, nil
}

func segName(id uint64) string { return fmt.Sprintf("%020d%s", id, segExt) }

// parseName reads the id of a file named by segName (ext segExt) or its
// acknowledgement file (ackExt); anything else is not the queue's.
func parseName(name, ext string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, ext)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	id, err := strconv.ParseUint(digits, 10, 64)
	return id, err == nil
}

// loadSegment reads one segment and its acknowledgements, repairing a torn
// tail and setting aside damage, and returns its unacknowledged records.
func (q *pqueue) loadSegment(id uint64) (_ *segment, _ []*pqRecord, err error) {
	s := &segment{id: id, path: filepath.Join(q.dir, segName(id))}
	defer func() {
		if err != nil {
			if s.f != nil {
				s.f.Close()
			}
			if s.ack != nil {
				s.ack.Close()
			}
		}
	}()
	acked, err := q.loadAcks(s)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(s.path, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open export queue segment: %w", err)
	}
	_ = f.Chmod(0o600)
	s.f = f
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("export queue segment: %w", err)
	}
	size := fi.Size()
	var recs []*pqRecord
	var hdr [recHeaderLen]byte
	var body []byte
	off := int64(0)
	cut := func(reason string, torn bool) error {
		if torn {
			q.log.Warn("export queue: torn record at the end of a file cut off (a write interrupted by a crash)",
				"file", s.path, "offset", off, "bytes", size-off, "reason", reason)
		} else {
			aside := fmt.Sprintf("%s%s-%d", s.path, corruptExt, off)
			if err := copyTail(f, off, size, aside); err != nil {
				return fmt.Errorf("export queue: set aside damaged data of %s: %w", s.path, err)
			}
			if q.m != nil {
				q.m.corrupt.Inc()
			}
			q.log.Error("export queue: damaged data; the requests from there on are not sent (kept aside)",
				"err", fmt.Errorf("%s: offset %d: %w: %s", s.path, off, ErrCorrupt, reason),
				"file", s.path, "offset", off, "bytes", size-off, "kept_in", aside)
		}
		if err := f.Truncate(off); err != nil {
			return fmt.Errorf("export queue: cut %s at offset %d: %w", s.path, off, err)
		}
		size = off
		return nil
	}
	for off < size {
		if size-off < recHeaderLen {
			if err := cut("short header", true); err != nil {
				return nil, nil, err
			}
			break
		}
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			return nil, nil, fmt.Errorf("read export queue segment %s: %w", s.path, err)
		}
		n := int64(binary.LittleEndian.Uint32(hdr[0:4]))
		end := off + recHeaderLen + n
		if n > maxRecordLen || end > size {
			// A length past the end is what an interrupted append leaves;
			// zeros are what a power loss leaves in a file whose length
			// reached the disk before its data.
			if err := cut("record runs past the end of the file", true); err != nil {
				return nil, nil, err
			}
			break
		}
		if cap(body) < int(n) {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := f.ReadAt(body, off+recHeaderLen); err != nil {
			return nil, nil, fmt.Errorf("read export queue segment %s: %w", s.path, err)
		}
		crc := crc32.Update(crc32.Update(0, q.crc, hdr[8:16]), q.crc, body)
		if crc != binary.LittleEndian.Uint32(hdr[4:8]) {
			zero, err := zeroFrom(f, off, size)
			if err != nil {
				return nil, nil, err
			}
			torn := end == size || zero
			if err := cut("checksum mismatch", torn); err != nil {
				return nil, nil, err
			}
			break
		}
		if _, ok := acked[off]; !ok {
			recs = append(recs, &pqRecord{
				seg: s, off: off, size: int(n),
				spans: int(binary.LittleEndian.Uint32(hdr[8:12])), flags: binary.LittleEndian.Uint32(hdr[12:16]),
			})
		}
		off = end
	}
	s.size = size
	s.live = len(recs)
	return s, recs, nil
}

// loadAcks reads a segment's acknowledgement file (absent: none). A torn
// last entry is cut off; a damaged entry with entries after it is logged
// and the file cut there: the records whose acknowledgements are lost are
// sent again, which at-least-once allows.
func (q *pqueue) loadAcks(s *segment) (map[int64]struct{}, error) {
	path := s.ackPath()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read export queue acknowledgements: %w", err)
	}
	acked := make(map[int64]struct{}, len(b)/ackLen)
	good := 0
	for ; good+ackLen <= len(b); good += ackLen {
		e := b[good : good+ackLen]
		if crc32.Checksum(e[:8], q.crc) != binary.LittleEndian.Uint32(e[8:12]) {
			break
		}
		acked[int64(binary.LittleEndian.Uint64(e[:8]))] = struct{}{}
	}
	if good < len(b) {
		if len(b)-good <= ackLen {
			q.log.Warn("export queue: torn acknowledgement at the end of a file cut off",
				"file", path, "offset", good, "bytes", len(b)-good)
		} else {
			q.log.Error("export queue: damaged acknowledgements; the requests they named are sent again",
				"err", fmt.Errorf("%s: offset %d: %w: checksum mismatch", path, good, ErrCorrupt),
				"file", path, "offset", good, "bytes", len(b)-good)
			if q.m != nil {
				q.m.corrupt.Inc()
			}
		}
		if err := os.Truncate(path, int64(good)); err != nil {
			return nil, fmt.Errorf("export queue: cut %s: %w", path, err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open export queue acknowledgements: %w", err)
	}
	s.ack = f
	s.ackSize = int64(good)
	return acked, nil
}

// zeroFrom reports whether f holds only zero bytes in [off, size).
func zeroFrom(f *os.File, off, size int64) (bool, error) {
	buf := make([]byte, 64<<10)
	for off < size {
		n := min(int64(len(buf)), size-off)
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			return false, fmt.Errorf("read export queue segment: %w", err)
		}
		for _, c := range buf[:n] {
			if c != 0 {
				return false, nil
			}
		}
		off += n
	}
	return true, nil
}

// copyTail copies f's bytes [off, size) to a new file at path.
func copyTail(f *os.File, off, size int64, path string) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	for off < size {
		n := min(int64(len(buf)), size-off)
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			out.Close()
			return err
		}
		if _, err := out.Write(buf[:n]); err != nil {
			out.Close()
			return err
		}
		off += n
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync export queue directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync export queue directory: %w", err)
	}
	return nil
}
