package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func open(t *testing.T, dir string, opts Options) *Log {
	t.Helper()
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func replayAll(t *testing.T, l *Log, after uint64) (pos []uint64, payloads []string, nows []int64) {
	t.Helper()
	err := l.Replay(after, func(p uint64, now time.Time, payload []byte) error {
		pos, payloads, nows = append(pos, p), append(payloads, string(payload)), append(nows, now.UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pos, payloads, nows
}

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

func TestRoundTripAcrossSegmentsAndRestart(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, Options{SegmentBytes: 100})
	for i := range 10 {
		p, err := l.Append(t0.Add(time.Duration(i)*time.Second), []byte(fmt.Sprintf("request-%02d-%s", i, strings.Repeat("x", 20))))
		if err != nil {
			t.Fatal(err)
		}
		if p != uint64(i+1) {
			t.Fatalf("append %d got position %d", i, p)
		}
	}
	if _, n := l.Size(); n < 3 {
		t.Errorf("%d segments for 10 records of ~50 bytes over 100-byte segments, want several", n)
	}
	l.Close()
	l = open(t, dir, Options{SegmentBytes: 100})
	if l.Next() != 11 {
		t.Fatalf("next after reopen %d, want 11", l.Next())
	}
	pos, payloads, nows := replayAll(t, l, 6)
	if fmt.Sprint(pos) != "[7 8 9 10]" || !strings.HasPrefix(payloads[0], "request-06-") || nows[0] != t0.Add(6*time.Second).UnixNano() {
		t.Errorf("replay after 6: %v %v %v", pos, payloads, nows)
	}
	if p, err := l.Append(t0, []byte("after-restart")); err != nil || p != 11 {
		t.Errorf("append after reopen: %d, %v; want 11", p, err)
	}
}

func TestTornTailIsCut(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, Options{})
	for i := range 3 {
		if _, err := l.Append(t0, []byte(fmt.Sprintf("r%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	seg := filepath.Join(dir, fmt.Sprintf("%020d.wal", 1))
	fi, _ := os.Stat(seg)
	full := fi.Size()
	// Crashes in the middle of the third record's write: a cut header, a
	// cut body, zeros after a whole record.
	for _, tc := range []struct {
		name string
		cut  func()
	}{
		{"cut header", func() { os.Truncate(seg, full-int64(len("r2"))-20) }},
		{"cut body", func() { os.Truncate(seg, full-1) }},
		{"zeros", func() {
			f, _ := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
			f.Write(make([]byte, 40))
			f.Close()
		}},
	} {
		tc.cut()
		l := open(t, dir, Options{})
		pos, payloads, _ := replayAll(t, l, 0)
		if len(pos) < 2 || payloads[0] != "r0" || payloads[1] != "r1" {
			t.Fatalf("%s: replay %v %v, want r0, r1 (and r2 unless cut)", tc.name, pos, payloads)
		}
		// The log goes on at the next position.
		p, err := l.Append(t0, []byte("next"))
		if err != nil || p != uint64(len(pos)+1) {
			t.Fatalf("%s: append after the cut: %d, %v", tc.name, p, err)
		}
		l.Close()
		fi, _ := os.Stat(seg)
		full = fi.Size()
	}
}

func TestDamageInAnOlderSegmentIsAnError(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, Options{SegmentBytes: 60})
	for i := range 6 {
		if _, err := l.Append(t0, []byte(fmt.Sprintf("record-%d-abcdefghij", i))); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	first := filepath.Join(dir, fmt.Sprintf("%020d.wal", 1))
	b, _ := os.ReadFile(first)
	b[30] ^= 0xff // inside the first record's body
	os.WriteFile(first, b, 0o600)
	_, err := Open(dir, Options{SegmentBytes: 60})
	if err == nil || !strings.Contains(err.Error(), first+": offset 0: checksum mismatch") {
		t.Errorf("open with a damaged older segment: %v, want an error naming the file and offset", err)
	}
}

func TestTruncateKeepsWhatIsNotAbsorbed(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, Options{SegmentBytes: 60})
	for i := range 8 {
		if _, err := l.Append(t0, []byte(fmt.Sprintf("record-%d-abcdefghij", i))); err != nil {
			t.Fatal(err)
		}
	}
	before, segs := l.Size()
	removed, err := l.Truncate(5)
	if err != nil || removed == 0 {
		t.Fatalf("truncate: %d, %v", removed, err)
	}
	after, segsAfter := l.Size()
	if segsAfter != segs-removed || after >= before {
		t.Errorf("size %d -> %d, segments %d -> %d (removed %d)", before, after, segs, segsAfter, removed)
	}
	pos, _, _ := replayAll(t, l, 5)
	if fmt.Sprint(pos) != "[6 7 8]" {
		t.Errorf("after truncating through 5, replay gives %v, want [6 7 8]", pos)
	}
}

func TestFullRefusesAppends(t *testing.T) {
	l := open(t, t.TempDir(), Options{SegmentBytes: 60, MaxBytes: 100})
	var err error
	n := 0
	for ; n < 10; n++ {
		if _, err = l.Append(t0, bytes.Repeat([]byte("x"), 20)); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrFull) || !l.Full() {
		t.Fatalf("after %d appends: %v, full %v; want ErrFull", n, err, l.Full())
	}
	// Absorbed and truncated, it takes records again.
	if _, err := l.Truncate(l.Next() - 1); err != nil {
		t.Fatal(err)
	}
	if l.Full() {
		t.Skip("the segment being written alone is over MaxBytes")
	}
	if _, err := l.Append(t0, []byte("y")); err != nil {
		t.Errorf("append after truncate: %v", err)
	}
}

// TestRecordFormat checks the framing against an encoder written here
// from the package documentation.
func TestRecordFormat(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, Options{})
	if _, err := l.Append(time.Unix(0, 42), []byte("hi")); err != nil {
		t.Fatal(err)
	}
	l.Close()
	got, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%020d.wal", 1)))
	body := binary.LittleEndian.AppendUint64(nil, 1)
	body = binary.LittleEndian.AppendUint64(body, 42)
	body = append(body, "hi"...)
	want := binary.LittleEndian.AppendUint32(nil, uint32(len(body)))
	want = binary.LittleEndian.AppendUint32(want, crc32c(body))
	want = append(want, body...)
	if !bytes.Equal(got, want) {
		t.Errorf("record\n got %x\nwant %x", got, want)
	}
}

// crc32c is CRC-32C (Castagnoli), bit by bit.
func crc32c(b []byte) uint32 {
	crc := ^uint32(0)
	for _, c := range b {
		crc ^= uint32(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x82f63b78
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

func BenchmarkAppend(b *testing.B) {
	l, err := Open(b.TempDir(), Options{FsyncInterval: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	payload := bytes.Repeat([]byte("s"), 100<<10) // a 100 KiB request
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Append(t0, payload); err != nil {
			b.Fatal(err)
		}
		if l.size > 512<<20 {
			l.Truncate(l.next - 1)
		}
	}
}

func TestSkipToNeverReusesPositions(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, Options{})
	for range 3 {
		if _, err := l.Append(t0, []byte("a")); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.SkipTo(10); err != nil {
		t.Fatal(err)
	}
	if p, err := l.Append(t0, []byte("b")); err != nil || p != 10 {
		t.Fatalf("append after SkipTo(10): %d, %v", p, err)
	}
	l.Close()
	l = open(t, dir, Options{})
	pos, _, _ := replayAll(t, l, 0)
	if fmt.Sprint(pos) != "[1 2 3 10]" || l.Next() != 11 {
		t.Errorf("after a reopen: records %v, next %d; want [1 2 3 10] and 11", pos, l.Next())
	}
}

// FuzzTornTail: whatever follows the last whole record of the last
// segment (a crash mid-write, a disk that returned garbage), Open keeps
// every record before it, cuts the rest, and the log goes on at the next
// position across a reopen.
func FuzzTornTail(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 40))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	// A whole record at the expected position (4) and then half of one.
	var rec bytes.Buffer
	for _, pos := range []uint64{4, 5} {
		body := binary.LittleEndian.AppendUint64(nil, pos)
		body = binary.LittleEndian.AppendUint64(body, uint64(t0.UnixNano()))
		body = append(body, "fuzzed"...)
		rec.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(body))))
		rec.Write(binary.LittleEndian.AppendUint32(nil, crc32.Checksum(body, castagnoli)))
		rec.Write(body)
	}
	f.Add(rec.Bytes()[:rec.Len()-3])
	f.Fuzz(func(t *testing.T, tail []byte) {
		dir := t.TempDir()
		l, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if _, err := l.Append(t0, fmt.Appendf(nil, "r%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		seg := filepath.Join(dir, fmt.Sprintf("%020d%s", 1, suffix))
		fh, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fh.Write(tail); err != nil {
			t.Fatal(err)
		}
		fh.Close()

		l, err = Open(dir, Options{})
		if err != nil {
			t.Fatalf("open after a %d-byte tail: %v", len(tail), err)
		}
		pos, payloads, _ := replayAll(t, l, 0)
		if len(pos) < 3 || payloads[0] != "r0" || payloads[1] != "r1" || payloads[2] != "r2" {
			t.Fatalf("replay %v %q: the three records before the tail are not all there", pos, payloads)
		}
		for i, p := range pos {
			if p != uint64(i+1) {
				t.Fatalf("replay positions %v: not 1, 2, 3, ...", pos)
			}
		}
		next, err := l.Append(t0, []byte("next"))
		if err != nil || next != uint64(len(pos)+1) {
			t.Fatalf("append after the tail: %d, %v; want %d", next, err, len(pos)+1)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l, err = Open(dir, Options{})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer l.Close()
		again, payloads2, _ := replayAll(t, l, 0)
		if len(again) != len(pos)+1 || payloads2[len(again)-1] != "next" {
			t.Fatalf("after reopening: %v %q, want the %d records and then \"next\"", again, payloads2, len(pos))
		}
	})
}
