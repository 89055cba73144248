package hoststate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Region layout constants. See the package doc.
const (
	magic         = "SLUICEHS"
	layoutVersion = 2 // 2: a set of breakers per priority
	pageSize      = 4096

	hdrWorkers = 12 // uint32
	hdrSlots   = 16 // uint64
	hdrArena   = 24 // uint64, words
	hdrEpoch   = 32 // int64, unix ns
	hdrLock    = 64 // uint64, owner pid (0: free)
	hdrNext    = 72 // uint64, next free arena word (under the lock)

	slotSize  = 256
	slotWords = slotSize / 8
	// payload starts on the slot's second half (its own two cache lines).
	payloadWord  = 16
	payloadWords = slotWords - payloadWord
	shadowWords  = numBreakers // per worker and cluster: one per breaker (kind and priority)
)

// Defaults of Options.
const (
	DefaultSlots       = 8192
	DefaultWorkers     = 64
	DefaultArenaWords  = 1 << 17 // 1 MiB of token buckets
	maxSlots           = 1 << 22
	maxWorkers         = 4096
	maxArenaWords      = 1 << 27
	lockStealAfterSpin = 64
)

// ErrBadRegion is returned by Open for memory that is not a host-state
// region of this layout version.
var ErrBadRegion = errors.New("hoststate: not a host-state region")

// ErrFull is returned when the slot table or the bucket arena has no room
// left for a new key.
var ErrFull = errors.New("hoststate: region full")

// Options size a new region. Zero values take the defaults.
type Options struct {
	// Slots is the capacity of the key table (hosts + clusters + limiters).
	// Keep it at least twice the number of keys: the table is open
	// addressed. Default 8192.
	Slots int
	// Workers is the number of worker indexes that hold breaker shadows
	// (the same index space as the stats region's slabs). Default 64.
	Workers int
	// ArenaWords is the number of token buckets the region can hold.
	// Default 131072.
	ArenaWords int
}

// Region is a mapped host-state region. Its methods are safe for
// concurrent use by any goroutine of any process that maps it; see the
// package doc for which ones take the region's lock.
type Region struct {
	fd      int
	mem     []byte
	slots   int
	workers int
	arenaN  int
	epoch   int64

	table  []uint64 // slots*slotWords
	shadow []uint64 // workers*slots*shadowWords
	arena  []uint64 // arenaN

	mu sync.Mutex // serialises this process's holders of the region lock
}

func layout(slots, workers, arena int) (tableOff, shadowOff, arenaOff, total int) {
	tableOff = pageSize
	shadowOff = roundUp(tableOff+slots*slotSize, pageSize)
	arenaOff = roundUp(shadowOff+workers*slots*shadowWords*8, pageSize)
	total = roundUp(arenaOff+arena*8, pageSize)
	return
}

func roundUp(n, to int) int { return (n + to - 1) / to * to }

// New creates a region in a new memfd, sealed against resizing, and maps it.
// The memory is sparse: pages are allocated when first written.
func New(o Options) (*Region, error) {
	if o.Slots == 0 {
		o.Slots = DefaultSlots
	}
	if o.Workers == 0 {
		o.Workers = DefaultWorkers
	}
	if o.ArenaWords == 0 {
		o.ArenaWords = DefaultArenaWords
	}
	if o.Slots < 1 || o.Slots > maxSlots || o.Workers < 1 || o.Workers > maxWorkers || o.ArenaWords < 1 || o.ArenaWords > maxArenaWords {
		return nil, fmt.Errorf("hoststate: options out of range (slots %d, workers %d, arena %d)", o.Slots, o.Workers, o.ArenaWords)
	}
	_, _, _, total := layout(o.Slots, o.Workers, o.ArenaWords)
	fd, err := unix.MemfdCreate("sluice-hoststate", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("hoststate: memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(total)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("hoststate: sizing region: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("hoststate: sealing region: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, total, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("hoststate: mmap: %w", err)
	}
	le := binary.LittleEndian
	copy(mem, magic)
	le.PutUint32(mem[8:], layoutVersion)
	le.PutUint32(mem[hdrWorkers:], uint32(o.Workers))
	le.PutUint64(mem[hdrSlots:], uint64(o.Slots))
	le.PutUint64(mem[hdrArena:], uint64(o.ArenaWords))
	le.PutUint64(mem[hdrEpoch:], uint64(time.Now().UnixNano()))
	return parse(fd, mem)
}

// Open maps a region created by New, possibly in another process. It takes
// ownership of fd: Close closes it.
func Open(fd int) (*Region, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("hoststate: fstat: %w", err)
	}
	if st.Size < pageSize {
		return nil, ErrBadRegion
	}
	mem, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("hoststate: mmap: %w", err)
	}
	r, err := parse(fd, mem)
	if err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	return r, nil
}

func parse(fd int, mem []byte) (*Region, error) {
	le := binary.LittleEndian
	if len(mem) < pageSize || string(mem[:8]) != magic || le.Uint32(mem[8:]) != layoutVersion {
		return nil, ErrBadRegion
	}
	workers := int(le.Uint32(mem[hdrWorkers:]))
	slots, arena := le.Uint64(mem[hdrSlots:]), le.Uint64(mem[hdrArena:])
	if slots < 1 || slots > maxSlots || workers < 1 || workers > maxWorkers || arena < 1 || arena > maxArenaWords {
		return nil, ErrBadRegion
	}
	tOff, sOff, aOff, total := layout(int(slots), workers, int(arena))
	if total > len(mem) {
		return nil, fmt.Errorf("%w: size mismatch", ErrBadRegion)
	}
	words := func(off, n int) []uint64 {
		return unsafe.Slice((*uint64)(unsafe.Pointer(&mem[off])), n)
	}
	return &Region{
		fd:      fd,
		mem:     mem,
		slots:   int(slots),
		workers: workers,
		arenaN:  int(arena),
		epoch:   int64(le.Uint64(mem[hdrEpoch:])),
		table:   words(tOff, int(slots)*slotWords),
		shadow:  words(sOff, workers*int(slots)*shadowWords),
		arena:   words(aOff, int(arena)),
	}, nil
}

// hdr returns a header word for atomic access.
func (r *Region) hdr(off int) *uint64 { return (*uint64)(unsafe.Pointer(&r.mem[off])) }

// FD returns the memfd, to pass to workers with SCM_RIGHTS. It stays owned
// by the region.
func (r *Region) FD() int { return r.fd }

// File returns a duplicate of the memfd as an *os.File (for
// exec.Cmd.ExtraFiles); the caller closes it.
func (r *Region) File() (*os.File, error) {
	fd, err := unix.FcntlInt(uintptr(r.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("hoststate: dup: %w", err)
	}
	return os.NewFile(uintptr(fd), "sluice-hoststate"), nil
}

// Workers returns the number of worker indexes with breaker shadows.
func (r *Region) Workers() int { return r.workers }

// Close unmaps the region and closes its memfd. Handles into it must not be
// used afterwards.
func (r *Region) Close() error {
	err := unix.Munmap(r.mem)
	if cerr := unix.Close(r.fd); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("hoststate: closing region: %w", err)
	}
	return nil
}
