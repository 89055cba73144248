package conn

import (
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// parker holds a worker's parked connections without a goroutine each.
// Their sockets sit in one epoll set of our own (one-shot: a socket leaves
// the set when it fires), and one goroutine waits on that set through the
// Go poller (an epoll descriptor is itself pollable). A readable socket gets
// a fresh goroutine that serves it again. A sweep resumes connections whose
// read deadline (the idle timeout) passed, and a drain resumes every parked
// connection of the draining generation (see Tracker.Drain).
//
// Its methods are safe for concurrent use.
type parker struct {
	ep *os.File // the epoll set, registered with the Go poller

	mu      sync.Mutex
	byFD    map[int32]*Conn // guarded by mu
	sweep   *time.Timer     // guarded by mu; nil while nothing is parked
	trimmed bool            // guarded by mu: memory was given back since the last activity

	activity atomic.Int64 // parks and resumes since the last sweep
}

// trimAt is how many parked connections make a quiet worker give the
// memory of its last burst back to the system (see sweepDeadlines).
const trimAt = 256

// sweepEvery is how often parked connections' read deadlines are checked.
const sweepEvery = time.Second

var (
	parkerOnce sync.Once
	theParker  atomic.Pointer[parker] // nil where epoll is unavailable: a goroutine waits instead
)

func getParker() *parker {
	parkerOnce.Do(func() {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
			return
		}
		p := &parker{ep: os.NewFile(uintptr(fd), "parked connections"), byFD: map[int32]*Conn{}}
		rc, err := p.ep.SyscallConn()
		if err != nil {
			p.ep.Close()
			return
		}
		go p.loop(rc)
		theParker.Store(p)
	})
	return theParker.Load()
}

// add parks c, whose socket is fd. It reports false if c cannot be
// parked here (fd < 0).
func (p *parker) add(c *Conn, fd int32) bool {
	if fd < 0 {
		return false
	}
	p.activity.Add(1)
	p.mu.Lock()
	p.byFD[fd] = c
	c.parkFD.Store(fd)
	if p.sweep == nil {
		p.sweep = time.AfterFunc(sweepEvery, p.sweepDeadlines)
	}
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: fd}
	if err := unix.EpollCtl(int(p.ep.Fd()), unix.EPOLL_CTL_ADD, int(fd), &ev); err != nil {
		p.take(c)
		return false
	}
	// A drain that began after the terminal filter last looked (it parks
	// only while no drain is under way) found c idle but not yet here,
	// and its wake-up, a read deadline, has no reader: serve c again, to
	// see the drain.
	if c.tracker.Draining() && p.take(c) {
		go c.serve()
	}
	return true
}

// take removes c from the set; it reports whether c was parked, in which
// case the caller owns resuming (or closing) it.
func (p *parker) take(c *Conn) bool {
	fd := c.parkFD.Load()
	if fd < 0 {
		return false
	}
	p.mu.Lock()
	ok := p.byFD[fd] == c
	if ok {
		delete(p.byFD, fd)
		c.parkFD.Store(-1)
	}
	p.mu.Unlock()
	if ok {
		_ = unix.EpollCtl(int(p.ep.Fd()), unix.EPOLL_CTL_DEL, int(fd), nil)
	}
	return ok
}

// loop resumes connections whose sockets became readable.
func (p *parker) loop(rc syscall.RawConn) {
	events := make([]unix.EpollEvent, 256)
	for {
		var n int
		err := rc.Read(func(fd uintptr) bool {
			var err error
			n, err = unix.EpollWait(int(fd), events, 0)
			return err != unix.EINTR && n != 0
		})
		if err != nil {
			return
		}
		for i := 0; i < n; i++ {
			fd := events[i].Fd
			p.mu.Lock()
			c := p.byFD[fd]
			if c != nil {
				delete(p.byFD, fd)
				c.parkFD.Store(-1)
			}
			p.mu.Unlock()
			if c != nil {
				p.activity.Add(1)
				_ = unix.EpollCtl(int(p.ep.Fd()), unix.EPOLL_CTL_DEL, int(fd), nil)
				go c.serve()
			}
		}
	}
}

// sweepDeadlines resumes connections whose read deadline passed; their
// terminal filter then sees the idle timeout. When many connections are
// parked and a whole sweep interval passed without a park or a resume, the
// worker is quiet after a burst: it collects garbage and returns freed
// memory to the system once, so that the buffers pooled for the burst do
// not stay resident while its connections idle.
func (p *parker) sweepDeadlines() {
	quiet := p.activity.Swap(0) == 0
	trim := false
	now := time.Now().UnixNano()
	type parked struct {
		c  *Conn
		fd int32
	}
	var due []parked
	p.mu.Lock()
	for fd, c := range p.byFD {
		if d := c.readDeadline.Load(); d != 0 && d <= now {
			delete(p.byFD, fd)
			c.parkFD.Store(-1)
			due = append(due, parked{c, fd})
		}
	}
	if !quiet {
		p.trimmed = false
	} else if !p.trimmed && len(p.byFD) >= trimAt {
		p.trimmed, trim = true, true
	}
	if len(p.byFD) > 0 {
		p.sweep.Reset(sweepEvery)
	} else {
		p.sweep = nil
	}
	p.mu.Unlock()
	if trim {
		runtime.GC()         // moves pooled buffers to the pools' victim caches
		debug.FreeOSMemory() // frees them, and returns the memory
	}
	for _, d := range due {
		_ = unix.EpollCtl(int(p.ep.Fd()), unix.EPOLL_CTL_DEL, int(d.fd), nil)
		go d.c.serve()
	}
}

// Parked returns how many connections of this worker wait in the parker's
// set (without a goroutine of their own).
func Parked() int {
	p := theParker.Load()
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.byFD)
}
