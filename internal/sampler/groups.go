package sampler

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"unsafe"
)

// sharedGroup is one resource and instrumentation scope encoding, held
// once per shard for every buffered trace that has spans under it. An SDK's
// resource (service, SDK, host and process attributes) is often larger than
// a span, and every trace of a service repeats it; copying it into each
// trace would cost more than the spans themselves.
type sharedGroup struct {
	// data is the group's key: each part as a presence byte, a length and
	// its bytes; the four views below point into it.
	data                                         []byte
	resource, resourceSchema, scope, scopeSchema []byte // nil when absent
	service                                      string // the resource's service.name, interned per shard
	hash                                         uint64
	refs                                         int
	next                                         *sharedGroup // same hash
}

// sharedGroupOverhead is what a group costs besides its bytes: the struct
// and its map slot.
const sharedGroupOverhead = int(unsafe.Sizeof(sharedGroup{})) + 32

// groupTable interns a shard's groups. Only the shard's goroutine uses it.
type groupTable struct {
	seed   maphash.Seed
	byHash map[uint64]*sharedGroup
	keys   []byte // the current batch's group keys
	ends   []int  // where each batch group's key ends in keys
	// resolved caches, per batch group, the shared group with its key once
	// looked up; an entry whose refs fell to 0 was freed and is looked up
	// again.
	resolved []*sharedGroup
}

func newGroupTable() groupTable {
	return groupTable{seed: maphash.MakeSeed(), byHash: make(map[uint64]*sharedGroup)}
}

// index computes the keys of a batch's groups, once per batch.
func (gt *groupTable) index(b *batch) {
	gt.keys, gt.ends = gt.keys[:0], gt.ends[:0]
	for i := range b.groups {
		g := &b.groups[i]
		for _, s := range []span{g.resource, g.resourceSchema, g.scope, g.scopeSchema} {
			if s.off == noBytes {
				gt.keys = append(gt.keys, 0)
				continue
			}
			gt.keys = append(gt.keys, 1)
			gt.keys = binary.AppendUvarint(gt.keys, uint64(s.n))
			gt.keys = append(gt.keys, s.in(b.buf)...)
		}
		gt.ends = append(gt.ends, len(gt.keys))
	}
	clear(gt.resolved)
	gt.resolved = gt.resolved[:0]
	for range b.groups {
		gt.resolved = append(gt.resolved, nil)
	}
}

// lookup returns the live shared group of batch group g, or nil when the
// shard holds none. Shared groups are unique per key, so comparing the
// pointers of live groups compares their keys.
func (gt *groupTable) lookup(g uint16) *sharedGroup {
	if sg := gt.resolved[g]; sg != nil && sg.refs > 0 {
		return sg
	}
	key := gt.key(g)
	h := maphash.Bytes(gt.seed, key)
	for sg := gt.byHash[h]; sg != nil; sg = sg.next {
		if bytes.Equal(sg.data, key) {
			gt.resolved[g] = sg
			return sg
		}
	}
	return nil
}

// acquireBatch is acquire for batch group g, through the batch's cache.
func (gt *groupTable) acquireBatch(g uint16) (*sharedGroup, int) {
	if sg := gt.lookup(g); sg != nil {
		sg.refs++
		return sg, 0
	}
	sg, added := gt.acquire(gt.key(g))
	gt.resolved[g] = sg
	return sg, added
}

// key returns batch group g's key (after index).
func (gt *groupTable) key(g uint16) []byte {
	start := 0
	if g > 0 {
		start = gt.ends[g-1]
	}
	return gt.keys[start:gt.ends[g]]
}

// acquire returns the shared group with key, adding a reference, and the
// bytes newly held (0 when the group was already there).
func (gt *groupTable) acquire(key []byte) (*sharedGroup, int) {
	h := maphash.Bytes(gt.seed, key)
	for g := gt.byHash[h]; g != nil; g = g.next {
		if bytes.Equal(g.data, key) {
			g.refs++
			return g, 0
		}
	}
	g := &sharedGroup{data: bytes.Clone(key), hash: h, refs: 1, next: gt.byHash[h]}
	rest := g.data
	for _, part := range []*[]byte{&g.resource, &g.resourceSchema, &g.scope, &g.scopeSchema} {
		present := rest[0] == 1
		rest = rest[1:]
		if !present {
			continue
		}
		n, k := binary.Uvarint(rest)
		*part = rest[k : k+int(n) : k+int(n)]
		rest = rest[k+int(n):]
	}
	gt.byHash[h] = g
	return g, len(g.data) + sharedGroupOverhead
}

// release drops a reference and returns the bytes freed (0 while the group
// is still referenced).
func (gt *groupTable) release(g *sharedGroup) int {
	g.refs--
	if g.refs > 0 {
		return 0
	}
	if head := gt.byHash[g.hash]; head == g {
		if g.next == nil {
			delete(gt.byHash, g.hash)
		} else {
			gt.byHash[g.hash] = g.next
		}
	} else {
		for p := head; p != nil; p = p.next {
			if p.next == g {
				p.next = g.next
				break
			}
		}
	}
	return len(g.data) + sharedGroupOverhead
}
