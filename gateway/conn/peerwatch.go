package conn

import (
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/sockpeek"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
)

// Peer-close watches (netfilter.PeerCloseWatcher).
//
// An HTTP/1.1 connection's goroutine waits on the upstream while a request
// is there, and reads nothing from the client: a client that gives up
// would not be noticed until the response is written to it. A watch makes
// the connection's tracker look at the socket, without reading it, about
// once a second while the watch lasts: a peek that finds the end of the
// stream or an error (not "nothing yet", not a pipelined request) runs the
// watch's abort, which fails the upstream read at once.
//
// A watch costs the request two atomic stores and an atomic add and
// subtract; the looks happen on the tracker's timer, which runs only while
// some connection is watched, and only for watches that last past a whole
// interval.
//
// The token is the handshake between the connection's goroutine and the
// tracker's sweep: the sweep fires a watch by swapping its token for 0
// (compare-and-swap), UnwatchPeerClose ends one by swapping in 0 itself,
// and whichever comes first decides whether the abort runs.

// peerSweepEvery is how often watched connections are looked at.
const peerSweepEvery = time.Second

var _ netfilter.PeerCloseWatcher = (*Conn)(nil)

// WatchPeerClose implements netfilter.PeerCloseWatcher.
func (c *Conn) WatchPeerClose(abort *func()) uint64 {
	c.peerSeq++
	c.peerAbort.Store(abort)
	c.peerWatch.Store(c.peerSeq) // publishes the abort
	t := c.tracker
	if t.peerWatches.Add(1) == 1 || !t.peerSweepOn.Load() {
		t.armPeerSweep()
	}
	return c.peerSeq
}

// UnwatchPeerClose implements netfilter.PeerCloseWatcher.
func (c *Conn) UnwatchPeerClose(token uint64) (fired bool) {
	c.tracker.peerWatches.Add(-1)
	return !c.peerWatch.CompareAndSwap(token, 0)
}

// PeerCloseFired implements netfilter.PeerCloseWatcher.
func (c *Conn) PeerCloseFired(token uint64) bool { return c.peerWatch.Load() != token }

// armPeerSweep starts the sweep's timer unless it runs.
func (t *Tracker) armPeerSweep() {
	if t.peerSweepOn.CompareAndSwap(false, true) {
		time.AfterFunc(peerSweepEvery, t.sweepPeers)
	}
}

// sweepPeers looks at the connections watched since the last sweep at
// least, and fires the watches of those whose peer is gone. It runs on the
// timer's goroutine, one sweep at a time.
func (t *Tracker) sweepPeers() {
	type due struct {
		c     *Conn
		token uint64
	}
	var looks []due
	t.mu.Lock()
	for c := range t.conns {
		token := c.peerWatch.Load()
		switch {
		case token == 0:
		case token != c.peerSwept:
			c.peerSwept = token // watched since; looked at next time
		default:
			looks = append(looks, due{c, token})
		}
	}
	t.mu.Unlock()
	for _, d := range looks {
		abort := d.c.peerAbort.Load() // the token's, if the swap below succeeds
		if d.c.peerGone() && d.c.peerWatch.CompareAndSwap(d.token, 0) {
			go (*abort)()
		}
	}
	t.peerSweepOn.Store(false)
	if t.peerWatches.Load() > 0 {
		t.armPeerSweep()
	}
}

// peerGone reports whether the client closed or reset the connection
// (sockpeek.Gone on the socket, the one under TLS for a TLS connection).
// Unread bytes without a FIN (a pipelined request) and nothing at all mean
// the client is still there.
func (c *Conn) peerGone() bool { return sockpeek.Gone(c.socket()) }
