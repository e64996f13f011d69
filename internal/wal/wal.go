// Package wal is tailgate's write-ahead log of accepted requests: the
// counts a request adds (SLIs, golden signals) are replayed from it after
// a crash, so that no acknowledged count is lost.
//
// The log is a directory of segment files named by the position of their
// first record. A record is framed as
//
//	length  uint32  (of what follows the CRC)
//	crc     uint32  (CRC-32C of what follows it)
//	pos     uint64  (the record's position: 1, 2, 3, ...)
//	now     int64   (the time the request was counted at, Unix ns)
//	payload []byte
//
// in little-endian order. Append writes a record with one write() before
// the request is acknowledged, which a kill -9 cannot undo; a background
// group commit fsyncs every FsyncInterval, which bounds what a power loss
// can take. On Open a torn record at the end of the last segment (a crash
// in the middle of a write) is cut off and logged.
//
// Consumers of the log (the SLO engine, the golden signals) commit the
// position they have absorbed together with their counts (see Mark), and
// Truncate deletes the segments every consumer has absorbed.
package wal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Mark is what a consumer has absorbed: every record up to Pos entirely,
// and the records after it only for the minutes before ClosedBefore
// (Unix ns; 0 means none). It is stored with the consumer's counts, in
// the same transaction.
type Mark struct {
	// Instance names the tailgate whose log this is (a fleet shares a
	// store, each instance has its own log).
	Instance     string
	Consumer     string
	Pos          uint64
	ClosedBefore int64
}

// Checkpoint gives a consumer a consistent cut of the log: fn runs, with
// the cut's time, while no request is being appended and counted, and Cut
// returns the position of the last record whose counts fn saw and that
// time (no record after the cut was counted at an earlier time).
type Checkpoint interface {
	Cut(fn func(at time.Time)) (pos uint64, at time.Time)
	// Instance is the name marks are stored under.
	Instance() string
}

const (
	headerSize = 4 + 4 + 8 + 8
	// maxRecord bounds a record's payload (a request is bounded well
	// below it by ingest.max_message_size).
	maxRecord = 256 << 20
	suffix    = ".wal"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors of the log.
var (
	// ErrFull: the log holds max_bytes; the consumers must absorb (flush)
	// before more can be appended.
	ErrFull = errors.New("write-ahead log full")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("write-ahead log closed")
)

// Options configure a Log.
type Options struct {
	// SegmentBytes is the size past which a new segment starts (64 MiB).
	SegmentBytes int64
	// MaxBytes bounds the log's files; Append refuses beyond it. 0: no bound.
	MaxBytes int64
	// FsyncInterval is the group commit's period; 0 fsyncs every append.
	FsyncInterval time.Duration
	Logger        *slog.Logger
}

// Log is an open write-ahead log. It is safe for concurrent use.
type Log struct {
	dir  string
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	segs     []segment // oldest first; the last is being written
	f        *os.File  // the last segment
	size     int64     // of every segment
	next     uint64    // position of the next record
	dirty    bool      // written since the last fsync
	closed   bool
	buf      []byte
	syncErr  error
	stopSync chan struct{}
	syncDone chan struct{}

	// Counters, for the daemon's metrics (see Stats).
	appended, appendedBytes, syncs uint64
}

// Stats are a Log's counters and size.
type Stats struct {
	Appended, AppendedBytes, Syncs uint64
	Bytes                          int64
	Segments                       int
}

// Stats returns the log's counters and size.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Appended: l.appended, AppendedBytes: l.appendedBytes, Syncs: l.syncs, Bytes: l.size, Segments: len(l.segs)}
}

type segment struct {
	first uint64 // position of its first record
	path  string
	size  int64
}

// Open opens (creating) the log in dir and checks every segment: a torn
// record at the end of the last one is cut off; a damaged record anywhere
// else is an error naming the segment and offset.
func Open(dir string, opts Options) (*Log, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 64 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("write-ahead log: %w", err)
	}
	l := &Log{dir: dir, opts: opts, log: opts.Logger, next: 1}
	names, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		first, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(name), suffix), 10, 64)
		if err != nil {
			continue // not ours
		}
		l.segs = append(l.segs, segment{first: first, path: name})
	}
	slices.SortFunc(l.segs, func(a, b segment) int { return compare(a.first, b.first) })
	for i := range l.segs {
		last := i == len(l.segs)-1
		end, size, err := l.scan(&l.segs[i], last, nil)
		if err != nil {
			return nil, err
		}
		l.segs[i].size = size
		l.size += size
		if end > 0 {
			l.next = end
		} else if l.segs[i].first > l.next {
			l.next = l.segs[i].first
		}
	}
	if err := l.openTail(); err != nil {
		return nil, err
	}
	if opts.FsyncInterval > 0 {
		l.stopSync, l.syncDone = make(chan struct{}), make(chan struct{})
		go l.syncLoop()
	}
	return l, nil
}

func compare(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// scan reads a segment's records, calling fn (when not nil) for each, and
// returns the position after its last record and its valid size. In the
// last segment a damaged tail is cut off.
func (l *Log) scan(s *segment, last bool, fn func(pos uint64, now int64, payload []byte) error) (next uint64, size int64, err error) {
	f, err := os.Open(s.path)
	if err != nil {
		return 0, 0, fmt.Errorf("write-ahead log: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return 0, 0, fmt.Errorf("write-ahead log: read %s: %w", s.path, err)
	}
	off := int64(0)
	want := s.first
	for off < int64(len(data)) {
		rec, n, problem := decode(data[off:], want)
		if problem != "" {
			if !last {
				return 0, 0, fmt.Errorf("write-ahead log: %s: offset %d: %s", s.path, off, problem)
			}
			l.log.Warn("write-ahead log: cutting a damaged tail off the last segment (a crash during a write)",
				"segment", s.path, "offset", off, "bytes", int64(len(data))-off, "problem", problem)
			if err := os.Truncate(s.path, off); err != nil {
				return 0, 0, fmt.Errorf("write-ahead log: cut %s at %d: %w", s.path, off, err)
			}
			break
		}
		if fn != nil {
			if err := fn(rec.pos, rec.now, rec.payload); err != nil {
				return 0, 0, err
			}
		}
		off += int64(n)
		want = rec.pos + 1
		next = want
	}
	return next, off, nil
}

type record struct {
	pos     uint64
	now     int64
	payload []byte
}

// decode reads one record at the start of b, which must be at position
// want; it returns the record, its framed length, or what is wrong.
func decode(b []byte, want uint64) (record, int, string) {
	if len(b) < headerSize {
		return record{}, 0, fmt.Sprintf("a %d-byte fragment where a record header (%d bytes) should be", len(b), headerSize)
	}
	n := binary.LittleEndian.Uint32(b[0:4])
	if n < headerSize-8 || n > maxRecord {
		return record{}, 0, fmt.Sprintf("record length %d out of range", n)
	}
	if int(n)+8 > len(b) {
		return record{}, 0, fmt.Sprintf("record of %d bytes cut short at %d", n, len(b)-8)
	}
	body := b[8 : 8+n]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[4:8]) {
		return record{}, 0, "checksum mismatch"
	}
	rec := record{pos: binary.LittleEndian.Uint64(body[0:8]), now: int64(binary.LittleEndian.Uint64(body[8:16])), payload: body[16:]}
	if rec.pos != want {
		return record{}, 0, fmt.Sprintf("record at position %d where %d was expected", rec.pos, want)
	}
	return rec, int(n) + 8, ""
}

// openTail opens the last segment for appending, or starts one.
func (l *Log) openTail() error {
	if len(l.segs) == 0 || l.segs[len(l.segs)-1].size >= l.opts.SegmentBytes {
		return l.startSegment()
	}
	s := &l.segs[len(l.segs)-1]
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("write-ahead log: %w", err)
	}
	l.f = f
	return nil
}

func (l *Log) startSegment() error {
	if l.f != nil {
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("write-ahead log: sync: %w", err)
		}
		if err := l.f.Close(); err != nil {
			return fmt.Errorf("write-ahead log: close segment: %w", err)
		}
	}
	path := filepath.Join(l.dir, fmt.Sprintf("%020d%s", l.next, suffix))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write-ahead log: %w", err)
	}
	l.f = f
	l.segs = append(l.segs, segment{first: l.next, path: path})
	if d, err := os.Open(l.dir); err == nil { // make the new name durable
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Next returns the position the next record will get; Next()-1 is the
// last record's.
func (l *Log) Next() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next
}

// Full reports whether the log holds MaxBytes or more.
func (l *Log) Full() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.opts.MaxBytes > 0 && l.size >= l.opts.MaxBytes
}

// Size returns the bytes of every segment, and how many segments there are.
func (l *Log) Size() (int64, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size, len(l.segs)
}

// Append writes one record with a single write() and returns its
// position. With FsyncInterval 0 it also fsyncs.
func (l *Log) Append(now time.Time, payload []byte) (uint64, error) {
	if len(payload) > maxRecord-headerSize {
		return 0, fmt.Errorf("write-ahead log: a %d-byte record is over the %d limit", len(payload), maxRecord)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	if l.syncErr != nil {
		return 0, l.syncErr
	}
	if l.opts.MaxBytes > 0 && l.size >= l.opts.MaxBytes {
		return 0, ErrFull
	}
	if l.segs[len(l.segs)-1].size >= l.opts.SegmentBytes {
		if err := l.startSegment(); err != nil {
			return 0, err
		}
	}
	pos := l.next
	n := headerSize - 8 + len(payload)
	b := slices.Grow(l.buf[:0], 8+n)[:8+n]
	binary.LittleEndian.PutUint32(b[0:4], uint32(n))
	binary.LittleEndian.PutUint64(b[8:16], pos)
	binary.LittleEndian.PutUint64(b[16:24], uint64(now.UnixNano()))
	copy(b[24:], payload)
	binary.LittleEndian.PutUint32(b[4:8], crc32.Checksum(b[8:], castagnoli))
	l.buf = b
	if _, err := l.f.Write(b); err != nil {
		// A short write leaves a torn record; the next Open cuts it off.
		l.syncErr = fmt.Errorf("write-ahead log: write: %w", err)
		return 0, l.syncErr
	}
	l.next++
	l.size += int64(len(b))
	l.segs[len(l.segs)-1].size += int64(len(b))
	l.appended++
	l.appendedBytes += uint64(len(b))
	l.dirty = true
	if l.opts.FsyncInterval == 0 {
		if err := l.syncLocked(); err != nil {
			return 0, err
		}
	}
	return pos, nil
}

func (l *Log) syncLocked() error {
	if !l.dirty || l.f == nil {
		return nil
	}
	if err := l.f.Sync(); err != nil {
		l.syncErr = fmt.Errorf("write-ahead log: fsync: %w", err)
		return l.syncErr
	}
	l.dirty = false
	l.syncs++
	return nil
}

// Sync fsyncs what was written.
func (l *Log) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.syncLocked()
}

func (l *Log) syncLoop() {
	defer close(l.syncDone)
	t := time.NewTicker(l.opts.FsyncInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stopSync:
			return
		case <-t.C:
			if err := l.Sync(); err != nil {
				l.log.Error("write-ahead log fsync failed; appends are refused until a restart", "err", err)
			}
		}
	}
}

// Replay calls fn for every record after position after, oldest first.
func (l *Log) Replay(after uint64, fn func(pos uint64, now time.Time, payload []byte) error) error {
	l.mu.Lock()
	segs := slices.Clone(l.segs)
	l.mu.Unlock()
	for i, s := range segs {
		if i+1 < len(segs) && segs[i+1].first <= after+1 {
			continue // every record in it is at or before after
		}
		_, _, err := l.scan(&s, false, func(pos uint64, now int64, payload []byte) error {
			if pos <= after {
				return nil
			}
			return fn(pos, time.Unix(0, now), payload)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Truncate deletes the segments whose every record is at or before upTo,
// keeping the one being written.
func (l *Log) Truncate(upTo uint64) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	removed := 0
	for len(l.segs) > 1 && l.segs[1].first <= upTo+1 {
		if err := os.Remove(l.segs[0].path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, fmt.Errorf("write-ahead log: %w", err)
		}
		l.size -= l.segs[0].size
		l.segs = l.segs[1:]
		removed++
	}
	return removed, nil
}

// Close fsyncs and closes the log.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	stop := l.stopSync
	l.mu.Unlock()
	if stop != nil {
		close(stop)
		<-l.syncDone
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.syncLocked()
	return errors.Join(err, l.f.Close())
}

// MarkStore reads the stored marks of an instance's consumers, by
// consumer.
type MarkStore interface {
	WALMarks(ctx context.Context, instance string) (map[string]Mark, error)
}

// SkipTo makes the next record's position at least pos, starting a new
// segment there. After a power loss the log may have lost records that a
// store had already absorbed (its mark is past the log's end); new
// records must not reuse those positions, or a later replay would skip
// them.
func (l *Log) SkipTo(pos uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if pos <= l.next {
		return nil
	}
	l.next = pos
	return l.startSegment()
}
