package signals

import (
	"encoding/binary"
	"math/bits"
)

// Constants of wyhash (Wang Yi, public domain), whose structure hashBytes
// follows: 64-bit multiply-and-fold mixing, which is what HyperLogLog needs
// (every output bit well distributed) at a few nanoseconds for the short
// strings attribute values are. The seed is fixed, so estimates are
// reproducible; the sketches never leave the process.
const (
	wyp0 = 0xa0761d6478bd642f
	wyp1 = 0xe7037ed1a0b428db
	wyp2 = 0x8ebc6af09c88c6e3
)

func wymix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hashBytes returns a 64-bit hash of p.
func hashBytes(p []byte) uint64 {
	n := len(p)
	seed := uint64(wyp2)
	var a, b uint64
	switch {
	case n == 0:
	case n < 4:
		a = uint64(p[0])<<16 | uint64(p[n>>1])<<8 | uint64(p[n-1])
	case n <= 8:
		a = uint64(binary.LittleEndian.Uint32(p))
		b = uint64(binary.LittleEndian.Uint32(p[n-4:]))
	case n <= 16:
		a = binary.LittleEndian.Uint64(p)
		b = binary.LittleEndian.Uint64(p[n-8:])
	default:
		q := p
		for len(q) > 16 {
			seed = wymix(binary.LittleEndian.Uint64(q)^wyp1, binary.LittleEndian.Uint64(q[8:])^seed)
			q = q[16:]
		}
		a = binary.LittleEndian.Uint64(p[n-16:])
		b = binary.LittleEndian.Uint64(p[n-8:])
	}
	hi, lo := bits.Mul64(a^wyp1, b^seed)
	return wymix(lo^wyp0^uint64(n), hi^wyp1)
}
