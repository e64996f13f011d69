package sampler

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tailgate-sre/tailgate/internal/otlp"
)

// keptEntry remembers a kept trace: when, at what rate and under which
// extension (rule and threshold) its spans were exported.
type keptEntry struct {
	at   int64
	rate float64
	ext  uint32 // index into the sampler's extension table
}

type keptRef struct {
	id otlp.TraceID
	at int64
}

// decisionCache is one shard's memory of decided traces. Kept IDs are held
// exactly, with their rule and rate, in a map bounded by maxKept and
// expired in insertion order (a FIFO); dropped IDs are added to a rotating
// pair of Bloom filters: the current one takes new IDs, the previous one
// is still consulted, and the pair rotates when the current filter is ttl
// old or full, so a dropped ID is remembered for ttl to 2 ttl (less only
// when more than capacity IDs per ttl are dropped).
type decisionCache struct {
	ttl     int64
	maxKept int

	kept  map[otlp.TraceID]keptEntry
	order []keptRef
	head  int

	dropCap    int
	shape      bloomShape
	cur, prev  *bloom
	curCreated int64
	// copies holds the storage of the filters' snapshot copies (one per
	// filter of the pair) from one periodic snapshot to the next.
	copies [2]copyBuf

	// stress holds exactly the IDs that stress relief dropped (not a rule
	// on the whole trace), bounded by maxStress and expired after ttl, so
	// that their late error spans can be kept (marked partial).
	stress      map[otlp.TraceID]int64
	stressOrder []keptRef
	stressHead  int
	maxStress   int

	// added counts the IDs added to kept and to the filters: the shard
	// writes it, and the tick loop reads it to skip snapshots of an
	// unchanged cache.
	added atomic.Uint64
}

func newDecisionCache(ttl time.Duration, maxKept, dropCap int, shape bloomShape, now int64) *decisionCache {
	return &decisionCache{
		ttl:        int64(ttl),
		maxKept:    max(maxKept, 1),
		kept:       make(map[otlp.TraceID]keptEntry),
		dropCap:    max(dropCap, 1),
		shape:      shape,
		cur:        newBloom(max(dropCap, 1), shape, now),
		curCreated: now,
		stress:     make(map[otlp.TraceID]int64),
		maxStress:  max(maxKept, 1),
	}
}

// stressDropped reports whether stress relief dropped id.
func (c *decisionCache) stressDropped(id *otlp.TraceID) bool {
	if len(c.stress) == 0 {
		return false
	}
	_, ok := c.stress[*id]
	return ok
}

// addStressDropped remembers that stress relief dropped id.
func (c *decisionCache) addStressDropped(id otlp.TraceID, now int64) {
	c.stress[id] = now
	c.stressOrder = append(c.stressOrder, keptRef{id: id, at: now})
	for len(c.stress) > c.maxStress {
		c.popStress()
	}
}

func (c *decisionCache) popStress() {
	ref := c.stressOrder[c.stressHead]
	c.stressOrder[c.stressHead] = keptRef{}
	c.stressHead++
	if at, ok := c.stress[ref.id]; ok && at == ref.at {
		delete(c.stress, ref.id)
	}
	if c.stressHead > 1024 && c.stressHead*2 > len(c.stressOrder) {
		n := copy(c.stressOrder, c.stressOrder[c.stressHead:])
		clear(c.stressOrder[n:])
		c.stressOrder = c.stressOrder[:n]
		c.stressHead = 0
	}
}

// lookupKept returns the kept entry of id if it is remembered.
func (c *decisionCache) lookupKept(id *otlp.TraceID) (keptEntry, bool) {
	e, ok := c.kept[*id]
	return e, ok
}

// dropped reports whether id was (probably) dropped.
func (c *decisionCache) dropped(id *otlp.TraceID) bool {
	return c.cur.has(id) || c.prev != nil && c.prev.has(id)
}

func (c *decisionCache) addKept(id otlp.TraceID, e keptEntry) {
	c.added.Add(1)
	c.kept[id] = e
	c.order = append(c.order, keptRef{id: id, at: e.at})
	for len(c.kept) > c.maxKept {
		c.popOldest()
	}
}

func (c *decisionCache) addDropped(id *otlp.TraceID, now int64) {
	if c.cur.full() {
		c.rotate(now)
	}
	c.cur.add(id, now)
	c.added.Add(1)
}

func (c *decisionCache) rotate(now int64) {
	old := c.prev
	c.prev = c.cur
	if old != nil && len(old.words) == len(c.prev.words) {
		old.reset(now)
		c.cur = old
	} else {
		c.cur = newBloom(c.dropCap, c.shape, now)
	}
	c.curCreated = now
}

func (c *decisionCache) popOldest() {
	ref := c.order[c.head]
	c.order[c.head] = keptRef{}
	c.head++
	if e, ok := c.kept[ref.id]; ok && e.at == ref.at {
		delete(c.kept, ref.id)
	}
	// Compact the FIFO when its dead prefix is half of it.
	if c.head > 1024 && c.head*2 > len(c.order) {
		n := copy(c.order, c.order[c.head:])
		clear(c.order[n:])
		c.order = c.order[:n]
		c.head = 0
	}
}

// expire forgets kept IDs older than ttl and rotates the Bloom filters
// every ttl.
func (c *decisionCache) expire(now int64) {
	for c.head < len(c.order) && c.order[c.head].at+c.ttl < now {
		c.popOldest()
	}
	if c.head == len(c.order) && c.head > 0 {
		c.order, c.head = c.order[:0], 0
	}
	for c.stressHead < len(c.stressOrder) && c.stressOrder[c.stressHead].at+c.ttl < now {
		c.popStress()
	}
	if c.stressHead == len(c.stressOrder) && c.stressHead > 0 {
		c.stressOrder, c.stressHead = c.stressOrder[:0], 0
	}
	if now-c.curCreated >= c.ttl {
		c.rotate(now)
	}
}

// memBytes estimates the cache's memory: the filters, the FIFO and the
// map (about 48 bytes a slot with Go's map overhead).
func (c *decisionCache) memBytes() int {
	n := c.cur.memBytes() + (cap(c.order)+cap(c.stressOrder))*int(unsafe.Sizeof(keptRef{})) + (len(c.kept)+len(c.stress))*48
	if c.prev != nil {
		n += c.prev.memBytes()
	}
	return n + c.copies[0].memBytes() + c.copies[1].memBytes()
}

// The decision cache file: a versioned binary format, little endian.
//
//	magic "TGDCACHE", version uint32 (2), saved_at int64 (unix ns)
//	strings: uvarint count, each uvarint length + bytes
//	kept:    uvarint count, each trace_id [16], at int64, rate float64 bits,
//	         rule uvarint (string index), threshold uvarint (string index)
//	filters: uvarint count, each k uint32, nblocks uint64, count uvarint,
//	         capacity uvarint, newest int64, then the nblocks*8 words:
//	         version 1: every word, uint64;
//	         version 2: uvarint count of non-zero words, each uvarint gap
//	         from the previous one's index + 1 and the word, uint64
//	         (filters are sized for a full ttl of traffic and mostly
//	         zero after a short run; a full one costs ~12% more)
//	crc32c of all of the above, uint32
const (
	cacheMagic   = "TGDCACHE"
	cacheVersion = 2
	// maxFilterBytes bounds a filter read from a file, so a damaged size
	// field cannot make the loader allocate without limit.
	maxFilterBytes = 4 << 30
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// cacheSnapshot is the content of a cache file.
type cacheSnapshot struct {
	savedAt int64
	kept    []savedKept
	filters []*bloom
}

type savedKept struct {
	id   otlp.TraceID
	at   int64
	rate float64
	ext  otlp.Extension // Rule and Threshold
}

// writeCacheFile writes snap to path through a temporary file in the same
// directory and a rename, so a crash never leaves a half-written file,
// and returns the file's size.
func writeCacheFile(path string, snap *cacheSnapshot) (size int64, err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("create temporary cache file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	crc := crc32.New(crcTable)
	var body byteCount
	w := bufio.NewWriterSize(io.MultiWriter(f, crc, &body), 1<<16)
	if err := encodeSnapshot(w, snap); err != nil {
		return 0, fmt.Errorf("write cache file: %w", err)
	}
	if err := w.Flush(); err != nil {
		return 0, fmt.Errorf("write cache file: %w", err)
	}
	if err := binary.Write(f, binary.LittleEndian, crc.Sum32()); err != nil {
		return 0, fmt.Errorf("write cache file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("sync cache file: %w", err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("close cache file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return 0, fmt.Errorf("rename cache file: %w", err)
	}
	return int64(body) + 4, nil // the body and its crc32c
}

// byteCount is an io.Writer that counts what it is given.
type byteCount int64

func (c *byteCount) Write(p []byte) (int, error) {
	*c += byteCount(len(p))
	return len(p), nil
}

func encodeSnapshot(w *bufio.Writer, snap *cacheSnapshot) error {
	var b []byte
	b = append(b, cacheMagic...)
	b = binary.LittleEndian.AppendUint32(b, cacheVersion)
	b = binary.LittleEndian.AppendUint64(b, uint64(snap.savedAt))

	strs := map[string]uint64{}
	var list []string
	intern := func(s string) uint64 {
		if i, ok := strs[s]; ok {
			return i
		}
		strs[s] = uint64(len(list))
		list = append(list, s)
		return strs[s]
	}
	for i := range snap.kept {
		intern(snap.kept[i].ext.Rule)
		intern(snap.kept[i].ext.Threshold)
	}
	b = binary.AppendUvarint(b, uint64(len(list)))
	for _, s := range list {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(snap.kept)))
	for i := range snap.kept {
		k := &snap.kept[i]
		b = append(b, k.id[:]...)
		b = binary.LittleEndian.AppendUint64(b, uint64(k.at))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(k.rate))
		b = binary.AppendUvarint(b, strs[k.ext.Rule])
		b = binary.AppendUvarint(b, strs[k.ext.Threshold])
		if len(b) > 1<<16 {
			if _, err := w.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
	}
	b = binary.AppendUvarint(b, uint64(len(snap.filters)))
	for _, f := range snap.filters {
		b = binary.LittleEndian.AppendUint32(b, f.k)
		b = binary.LittleEndian.AppendUint64(b, f.nblocks)
		b = binary.AppendUvarint(b, uint64(f.count))
		b = binary.AppendUvarint(b, uint64(f.capacity))
		b = binary.LittleEndian.AppendUint64(b, uint64(f.newest))
		b = binary.AppendUvarint(b, uint64(f.nonzero()))
		next := 0
		var err error
		f.eachNonzero(func(i int, word uint64) bool {
			b = binary.AppendUvarint(b, uint64(i-next))
			b = binary.LittleEndian.AppendUint64(b, word)
			next = i + 1
			if len(b) > 1<<16 {
				if _, err = w.Write(b); err != nil {
					return false
				}
				b = b[:0]
			}
			return true
		})
		if err != nil {
			return err
		}
	}
	_, err := w.Write(b)
	return err
}

// errCorrupt marks a cache file that cannot be read.
var errCorrupt = errors.New("corrupt decision cache file")

// readCacheFile reads a cache file. A missing file returns (nil, nil).
func readCacheFile(path string) (*cacheSnapshot, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read decision cache %q: %w", path, err)
	}
	snap, err := decodeSnapshot(data)
	if err != nil {
		return nil, fmt.Errorf("read decision cache %q: %w", path, err)
	}
	return snap, nil
}

// cacheReader reads the fields of a cache file with bounds checks; the
// first failure sticks.
type cacheReader struct {
	b   []byte
	err error
}

func (r *cacheReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated or invalid %s", errCorrupt, what)
	}
	r.b = nil
}

func (r *cacheReader) bytes(n int, what string) []byte {
	if r.err != nil || n < 0 || len(r.b) < n {
		r.fail(what)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *cacheReader) u32(what string) uint32 {
	v := r.bytes(4, what)
	if v == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(v)
}

func (r *cacheReader) u64(what string) uint64 {
	v := r.bytes(8, what)
	if v == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(v)
}

func (r *cacheReader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a uvarint count of items of at least minSize bytes each,
// rejecting counts the remaining bytes cannot hold.
func (r *cacheReader) count(minSize int, what string) int {
	n := r.uvarint(what)
	if r.err == nil && n > uint64(len(r.b)/minSize) {
		r.fail(what)
		return 0
	}
	return int(n)
}

func decodeSnapshot(data []byte) (*cacheSnapshot, error) {
	if len(data) < len(cacheMagic)+4+8+4 {
		return nil, fmt.Errorf("%w: %d bytes is too short", errCorrupt, len(data))
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if string(body[:len(cacheMagic)]) != cacheMagic {
		return nil, fmt.Errorf("%w: not a decision cache file", errCorrupt)
	}
	version := binary.LittleEndian.Uint32(body[len(cacheMagic):])
	if version != 1 && version != cacheVersion {
		return nil, fmt.Errorf("%w: version %d, want 1 or %d", errCorrupt, version, cacheVersion)
	}
	if crc32.Checksum(body, crcTable) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", errCorrupt)
	}
	r := &cacheReader{b: body[len(cacheMagic)+4:]}
	snap := &cacheSnapshot{savedAt: int64(r.u64("saved_at"))}
	strs := make([]string, r.count(1, "string count"))
	for i := range strs {
		n := r.uvarint("string length")
		if n > uint64(len(r.b)) {
			r.fail("string")
			break
		}
		strs[i] = string(r.bytes(int(n), "string"))
	}
	str := func(what string) string {
		i := r.uvarint(what)
		if r.err != nil || i >= uint64(len(strs)) {
			r.fail(what)
			return ""
		}
		return strs[i]
	}
	nk := r.count(16+8+8+2, "kept count")
	snap.kept = make([]savedKept, 0, nk)
	for range nk {
		var k savedKept
		copy(k.id[:], r.bytes(16, "trace_id"))
		k.at = int64(r.u64("kept time"))
		k.rate = math.Float64frombits(r.u64("rate"))
		k.ext.Rule = str("rule")
		k.ext.Threshold = str("threshold")
		if r.err != nil {
			break
		}
		if !(k.rate >= 1) || math.IsInf(k.rate, 0) {
			r.fail("rate")
			break
		}
		snap.kept = append(snap.kept, k)
	}
	nf := r.count(4+8+1+1+8, "filter count")
	for range nf {
		f := &bloom{k: r.u32("filter k"), nblocks: r.u64("filter size")}
		f.count = int(r.uvarint("filter count"))
		f.capacity = int(r.uvarint("filter capacity"))
		f.newest = int64(r.u64("filter time"))
		if r.err != nil || f.k == 0 || f.k > 64 || f.nblocks == 0 || f.nblocks > maxFilterBytes/(blockWords*8) ||
			version == 1 && f.nblocks > uint64(len(r.b))/(blockWords*8) {
			r.fail("filter")
			break
		}
		f.words = hugeWords(int(f.nblocks * blockWords))
		if version == 1 {
			raw := r.bytes(int(f.nblocks)*blockWords*8, "filter words")
			for i := range f.words {
				f.words[i] = binary.LittleEndian.Uint64(raw[i*8:])
			}
		} else {
			n := r.count(1+8, "filter word count")
			next := uint64(0)
			for range n {
				next += r.uvarint("filter word gap")
				word := r.u64("filter word")
				if r.err != nil || next >= uint64(len(f.words)) || word == 0 {
					r.fail("filter word")
					break
				}
				f.words[next] = word
				next++
			}
		}
		snap.filters = append(snap.filters, f)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return nil, r.err
	}
	return snap, nil
}
