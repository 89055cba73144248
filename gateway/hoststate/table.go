package hoststate

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
)

// Slot states (low byte of a slot's first word; the kind is the next byte).
const (
	stateFree     = 0 // never used: ends a probe
	stateClaiming = 1 // being written under the lock (garbage if the writer died)
	stateLive     = 2
	stateRetired  = 3 // removed from config; handles may still point at it
	stateDead     = 4 // reusable
)

// Key kinds.
const (
	kindHost    = 'h'
	kindCluster = 'c'
	kindBuckets = 'b'
)

const (
	keyWords = payloadWord - 2
	// MaxKeyLen is the longest key a slot holds: for a host, the cluster
	// name, one byte and the address together.
	MaxKeyLen = keyWords*8 - 2
)

// key is a slot key as stored: byte 0 the length, byte 1 the kind, then the
// bytes.
type key [keyWords]uint64

func makeKey(kind byte, a, b string) (k key, h uint64, err error) {
	n := len(a)
	if kind == kindHost {
		n += 1 + len(b)
	}
	if n > MaxKeyLen {
		return k, 0, fmt.Errorf("hoststate: key %q/%q longer than %d bytes", a, b, MaxKeyLen)
	}
	var buf [keyWords * 8]byte
	buf[0], buf[1] = byte(n), kind
	copy(buf[2:], a)
	if kind == kindHost {
		copy(buf[3+len(a):], b) // buf[2+len(a)] stays 0: the separator
	}
	h = 14695981039346656037 // FNV-1a
	for _, c := range buf[:2+n] {
		h ^= uint64(c)
		h *= 1099511628211
	}
	for i := range k {
		k[i] = binary.LittleEndian.Uint64(buf[i*8:])
	}
	return k, h, nil
}

// parts decodes a stored key into its kind and strings.
func (k *key) parts() (kind byte, a, b string) {
	var buf [keyWords * 8]byte
	for i := range k {
		binary.LittleEndian.PutUint64(buf[i*8:], k[i])
	}
	n := int(buf[0])
	s := buf[2 : 2+n]
	kind = buf[1]
	if kind == kindHost {
		for i, c := range s {
			if c == 0 {
				return kind, string(s[:i]), string(s[i+1:])
			}
		}
	}
	return kind, string(s), ""
}

func (r *Region) slot(i int) []uint64 { return r.table[i*slotWords : (i+1)*slotWords] }

func state(w uint64) uint8 { return uint8(w) }

func (r *Region) loadKey(s []uint64) (k key) {
	for i := range k {
		k[i] = atomic.LoadUint64(&s[2+i])
	}
	return k
}

func (r *Region) matches(s []uint64, k *key, h uint64) bool {
	if atomic.LoadUint64(&s[1]) != h {
		return false
	}
	for i := range k {
		if atomic.LoadUint64(&s[2+i]) != k[i] {
			return false
		}
	}
	return true
}

// find returns the slot of a live key, or -1. It takes no lock.
func (r *Region) find(k *key, h uint64) int {
	for n, i := 0, int(h%uint64(r.slots)); n < r.slots; n, i = n+1, (i+1)%r.slots {
		s := r.slot(i)
		st := state(atomic.LoadUint64(&s[0]))
		if st == stateFree {
			return -1
		}
		if st == stateLive && r.matches(s, k, h) {
			return i
		}
	}
	return -1
}

// add returns the slot of key k, making it live: an existing live or
// retired slot keeps its payload; a new one gets init's payload. It reports
// whether the slot is new. Call with the lock held.
func (r *Region) add(kind byte, k *key, h uint64, init func(p []uint64) error) (int, bool, error) {
	reuse := -1
	for n, i := 0, int(h%uint64(r.slots)); n < r.slots; n, i = n+1, (i+1)%r.slots {
		s := r.slot(i)
		st := state(atomic.LoadUint64(&s[0]))
		switch st {
		case stateLive, stateRetired:
			if r.matches(s, k, h) {
				atomic.StoreUint64(&s[0], stateLive|uint64(kind)<<8)
				return i, false, nil
			}
			continue
		case stateClaiming, stateDead:
			// A claiming slot under our lock belongs to a writer that died.
			if reuse < 0 {
				reuse = i
			}
			continue
		}
		if reuse < 0 {
			reuse = i
		}
		break
	}
	if reuse < 0 {
		return -1, false, ErrFull
	}
	s := r.slot(reuse)
	atomic.StoreUint64(&s[0], stateClaiming)
	atomic.StoreUint64(&s[1], h)
	for i := range k {
		atomic.StoreUint64(&s[2+i], k[i])
	}
	p := s[payloadWord:]
	for i := range p {
		atomic.StoreUint64(&p[i], 0)
	}
	for w := 0; w < r.workers && kind == kindCluster; w++ {
		for j := range shadowWords {
			atomic.StoreUint64(r.shadowWord(w, reuse, j), 0)
		}
	}
	if init != nil {
		if err := init(p); err != nil {
			atomic.StoreUint64(&s[0], stateDead)
			return -1, false, err
		}
	}
	atomic.StoreUint64(&s[0], stateLive|uint64(kind)<<8)
	return reuse, true, nil
}

// each calls fn for every slot in one of the given states, with the lock
// held by the caller.
func (r *Region) each(fn func(i int, st uint8, kind byte, a, b string)) {
	for i := 0; i < r.slots; i++ {
		s := r.slot(i)
		w := atomic.LoadUint64(&s[0])
		st := state(w)
		if st != stateLive && st != stateRetired {
			continue
		}
		k := r.loadKey(s)
		kind, a, b := k.parts()
		fn(i, st, kind, a, b)
	}
}

func (r *Region) setState(i int, st uint8) {
	s := r.slot(i)
	w := atomic.LoadUint64(&s[0])
	atomic.StoreUint64(&s[0], w&^0xff|uint64(st))
}

// RetireCluster marks the record of cluster name and of each of its hosts
// as removed: lookups stop finding them, handles keep working, and Reclaim
// later frees them. Use it when a reload drops a cluster.
func (r *Region) RetireCluster(name string) {
	r.lock()
	defer r.unlock()
	r.each(func(i int, st uint8, kind byte, a, _ string) {
		if st == stateLive && (kind == kindHost || kind == kindCluster) && a == name {
			r.setState(i, stateRetired)
		}
	})
}

// RetireBuckets retires the bucket set of key (see Buckets).
func (r *Region) RetireBuckets(key string) {
	r.lock()
	defer r.unlock()
	r.each(func(i int, st uint8, kind byte, a, _ string) {
		if st == stateLive && kind == kindBuckets && a == key {
			r.setState(i, stateRetired)
		}
	})
}

// Reclaim frees every retired slot for reuse. Call it only when no process
// holds a handle into them any more: after the workers of the generations
// that used them have exited.
func (r *Region) Reclaim() {
	r.lock()
	defer r.unlock()
	r.each(func(i int, st uint8, _ byte, _, _ string) {
		if st == stateRetired {
			r.setState(i, stateDead)
		}
	})
}

// Len returns the number of live and retired keys (for the admin page and
// tests).
func (r *Region) Len() (live, retired int) {
	for i := 0; i < r.slots; i++ {
		switch state(atomic.LoadUint64(&r.slot(i)[0])) {
		case stateLive:
			live++
		case stateRetired:
			retired++
		}
	}
	return live, retired
}
