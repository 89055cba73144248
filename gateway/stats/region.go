package stats

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Region layout: a header page with the schema, then slabs. Slab 0 is the
// retired accumulator, slab 1 the reset baseline, slab 2 the supervisor's
// (server.*), and slabs 3.. the workers'.
const (
	magic         = "SLUICEST"
	layoutVersion = 1
	headerSize    = 64
	pageSize      = 4096
	cacheLine     = 64

	slabRetired  = 0
	slabBaseline = 1
	slabServer   = 2
	slabReserved = 3
)

// MaxSlabs bounds the number of worker slabs of a region.
const MaxSlabs = 4096

// ErrBadRegion is returned by OpenRegion for memory that is not a stats
// region of this version.
var ErrBadRegion = errors.New("stats: not a stats region")

// Region is a shared-memory stats area: a memfd mapped MAP_SHARED, holding
// the schema and one slab per writer. See the package doc for the layout and
// what survives restarts.
//
// Slab handles are lock-free. The supervisor operations (Snapshot, Retire,
// Inherit, ZeroGauges, ResetCounters) serialise on a mutex of this process;
// only one process at a time may run them on a region (the supervisor that
// owns it; on an upgrade the old supervisor stops before the new one starts).
type Region struct {
	schema   *Schema
	fd       int
	mem      []byte
	slabOff  int
	slabSize int
	nslabs   int // worker slabs
	slabs    []*Slab

	mu sync.Mutex // serialises supervisor operations
}

func layout(s *Schema, nslabs int) (schemaJSON []byte, slabOff, slabSize, total int) {
	schemaJSON, _ = s.MarshalJSON()
	slabOff = roundUp(headerSize+len(schemaJSON), pageSize)
	words := s.nc + 2*s.ng + histWords*s.nh
	slabSize = roundUp(8*words, cacheLine)
	if slabSize == 0 {
		slabSize = cacheLine
	}
	return schemaJSON, slabOff, slabSize, slabOff + slabSize*(nslabs+slabReserved)
}

func roundUp(n, to int) int { return (n + to - 1) / to * to }

// NewRegion creates a memfd sized for schema and workers worker slabs, maps
// it, and writes the header and schema. The memfd is sealed against
// resizing, so no writer can truncate it under a reader.
func NewRegion(schema *Schema, workers int) (*Region, error) {
	if workers < 1 || workers > MaxSlabs {
		return nil, fmt.Errorf("stats: worker slabs %d out of range 1..%d", workers, MaxSlabs)
	}
	js, slabOff, slabSize, total := layout(schema, workers)
	fd, err := unix.MemfdCreate("sluice-stats", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("stats: memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(total)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("stats: sizing region: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("stats: sealing region: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, total, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("stats: mmap: %w", err)
	}
	copy(mem, magic)
	le := binary.LittleEndian
	le.PutUint32(mem[8:], layoutVersion)
	le.PutUint32(mem[12:], uint32(workers))
	le.PutUint64(mem[16:], schema.Hash())
	le.PutUint64(mem[24:], uint64(len(js)))
	le.PutUint64(mem[32:], uint64(slabSize))
	le.PutUint64(mem[40:], uint64(slabOff))
	copy(mem[headerSize:], js)
	return newRegion(schema, fd, mem, slabOff, slabSize, workers), nil
}

// OpenRegion maps a region created by NewRegion in another process, reading
// the schema from the region itself. It takes ownership of fd (Close closes
// it). A worker should compare Schema().Hash() with the schema it built from
// its own config before trusting names to mean the same thing.
func OpenRegion(fd int) (*Region, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("stats: fstat: %w", err)
	}
	size := int(st.Size)
	if size < headerSize {
		return nil, ErrBadRegion
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("stats: mmap: %w", err)
	}
	r, err := parseRegion(fd, mem)
	if err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	return r, nil
}

func parseRegion(fd int, mem []byte) (*Region, error) {
	le := binary.LittleEndian
	if string(mem[:8]) != magic || le.Uint32(mem[8:]) != layoutVersion {
		return nil, ErrBadRegion
	}
	workers := int(le.Uint32(mem[12:]))
	jsLen := le.Uint64(mem[24:])
	if workers < 1 || workers > MaxSlabs || jsLen > uint64(len(mem)-headerSize) {
		return nil, ErrBadRegion
	}
	schema, err := unmarshalSchema(mem[headerSize : headerSize+int(jsLen)])
	if err != nil {
		return nil, err
	}
	if schema.Hash() != le.Uint64(mem[16:]) {
		return nil, fmt.Errorf("%w: schema hash mismatch", ErrBadRegion)
	}
	_, slabOff, slabSize, total := layout(schema, workers)
	if uint64(slabSize) != le.Uint64(mem[32:]) || uint64(slabOff) != le.Uint64(mem[40:]) || total > len(mem) {
		return nil, fmt.Errorf("%w: size mismatch", ErrBadRegion)
	}
	return newRegion(schema, fd, mem, slabOff, slabSize, workers), nil
}

func newRegion(s *Schema, fd int, mem []byte, slabOff, slabSize, workers int) *Region {
	r := &Region{schema: s, fd: fd, mem: mem, slabOff: slabOff, slabSize: slabSize, nslabs: workers}
	r.slabs = make([]*Slab, workers+slabReserved)
	for i := range r.slabs {
		p := unsafe.Pointer(&mem[slabOff+i*slabSize])
		words := unsafe.Slice((*uint64)(p), slabSize/8)
		r.slabs[i] = &Slab{region: r, index: i - slabReserved, words: words}
	}
	return r
}

// Schema returns the region's schema.
func (r *Region) Schema() *Schema { return r.schema }

// Workers returns the number of worker slabs.
func (r *Region) Workers() int { return r.nslabs }

// FD returns the memfd, to pass to workers with SCM_RIGHTS. It stays owned
// by the region.
func (r *Region) FD() int { return r.fd }

// File returns a duplicate of the memfd as an *os.File (for
// exec.Cmd.ExtraFiles); the caller closes it.
func (r *Region) File() (*os.File, error) {
	fd, err := unix.FcntlInt(uintptr(r.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("stats: dup: %w", err)
	}
	return os.NewFile(uintptr(fd), "sluice-stats"), nil
}

// Close unmaps the region and closes its memfd. Handles into it must not be
// used afterwards.
func (r *Region) Close() error {
	err := unix.Munmap(r.mem)
	if cerr := unix.Close(r.fd); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("stats: closing region: %w", err)
	}
	return nil
}

// Slab returns worker i's slab (0 ≤ i < Workers()), or nil if out of range.
func (r *Region) Slab(i int) *Slab {
	if i < 0 || i >= r.nslabs {
		return nil
	}
	return r.slabs[i+slabReserved]
}

// ServerSlab returns the supervisor's slab, for the server.* gauges.
func (r *Region) ServerSlab() *Slab { return r.slabs[slabServer] }

// Retire folds worker slab i into the retired accumulator and zeroes it, so
// the slab can be given to a new writer without counters going backwards.
// Call it only after the slab's writer has exited. A worker restarted in
// place (after a crash) keeps its slab and needs no Retire.
func (r *Region) Retire(i int) error {
	s := r.Slab(i)
	if s == nil {
		return fmt.Errorf("stats: retire: no slab %d", i)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ret := r.slabs[slabRetired]
	nc, ng, nh := r.schema.Len()
	for w := 0; w < nc; w++ {
		atomic.AddUint64(&ret.words[w], atomic.SwapUint64(&s.words[w], 0))
	}
	for g := 0; g < ng; g++ {
		v, u := nc+2*g, nc+2*g+1
		atomic.StoreUint64(&s.words[v], 0)
		if atomic.SwapUint64(&s.words[u], 0) != 0 {
			atomic.StoreUint64(&ret.words[u], 1)
		}
	}
	off := nc + 2*ng
	for w := off; w < off+nh*histWords; w++ {
		atomic.AddUint64(&ret.words[w], atomic.SwapUint64(&s.words[w], 0))
	}
	return nil
}

// ZeroGauges sets worker slab i's gauges to zero: the supervisor calls it
// when it reaps the worker, since a dead process holds no connections. The
// replacement recomputes its gauges from zero.
func (r *Region) ZeroGauges(i int) error {
	s := r.Slab(i)
	if s == nil {
		return fmt.Errorf("stats: zero gauges: no slab %d", i)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	nc, ng, _ := r.schema.Len()
	for g := 0; g < ng; g++ {
		atomic.StoreUint64(&s.words[nc+2*g], 0)
	}
	return nil
}

// ResetCounters makes counters and histograms read as zero from now on (the
// admin /reset_counters), by recording their current totals as a baseline in
// the region; the baseline survives an upgrade like the counters do.
func (r *Region) ResetCounters() {
	r.mu.Lock()
	defer r.mu.Unlock()
	base := r.slabs[slabBaseline]
	nc, ng, nh := r.schema.Len()
	set := func(w int) {
		var sum uint64
		for i, s := range r.slabs {
			if i != slabBaseline {
				sum += atomic.LoadUint64(&s.words[w])
			}
		}
		atomic.StoreUint64(&base.words[w], sum)
	}
	for w := 0; w < nc; w++ {
		set(w)
	}
	off := nc + 2*ng
	for w := off; w < off+nh*histWords; w++ {
		set(w)
	}
}

// Inherit folds an older region's counters and histograms into this one's
// retired accumulator and baseline, by name: a reload whose config changes
// the schema creates a new region and, once every writer of the old one has
// exited, inherits it and closes it. Stats absent from this schema (a
// removed cluster or listener) are dropped, as Envoy drops them; gauges are
// not inherited (they are recomputed). old must differ from r.
func (r *Region) Inherit(old *Region) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old.mu.Lock()
	defer old.mu.Unlock()
	ret, base := r.slabs[slabRetired], r.slabs[slabBaseline]
	for _, d := range old.schema.defs {
		kind, newIdx, ok := r.schema.Lookup(d.Name)
		if !ok || kind != d.Kind || kind == KindGauge {
			continue
		}
		_, oldIdx, _ := old.schema.Lookup(d.Name)
		n := 1
		dst, src := r.wordOf(kind, newIdx), old.wordOf(kind, oldIdx)
		if kind == KindHistogram {
			n = histWords
		}
		for w := 0; w < n; w++ {
			var sum uint64
			for i, s := range old.slabs {
				if i != slabBaseline {
					sum += atomic.LoadUint64(&s.words[src+w])
				}
			}
			atomic.AddUint64(&ret.words[dst+w], sum)
			atomic.AddUint64(&base.words[dst+w], atomic.LoadUint64(&old.slabs[slabBaseline].words[src+w]))
		}
	}
}

// wordOf returns the first word of a stat's slot.
func (r *Region) wordOf(k Kind, idx int) int {
	nc, ng, _ := r.schema.Len()
	switch k {
	case KindCounter:
		return idx
	case KindGauge:
		return nc + 2*idx
	default:
		return nc + 2*ng + histWords*idx
	}
}
