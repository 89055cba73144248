package pool

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Waiting for room under max_connections. As in Envoy, a request that
// finds its priority's connections at max_connections is not refused: it
// stays pending (holding a unit of max_pending_requests, which the router
// takes) until a connection is free or may be opened, or its route timeout
// passes. A pool signals its waiters when one of its connections goes back
// idle, ends a stream (HTTP/2) or closes and gives back its unit; units
// given back by other pools of the priority (other workers, other server
// names) are not signalled, so a waiter also tries again after a short,
// growing pause.

// maxOverflowPoll bounds the pause between two tries of a waiter that got
// no signal.
const maxOverflowPoll = 20 * time.Millisecond

// ErrPendingTimeout is returned by WaitGet and RoundTrip when ctx ended
// before a connection could be had under max_connections.
var ErrPendingTimeout = errors.New("pool: timed out waiting for a connection under max_connections")

// signal wakes the pool's waiters, if any.
func (p *Pool) signal() {
	if p.waiters.Load() == 0 {
		return
	}
	p.mu.Lock()
	if p.room != nil {
		close(p.room)
		p.room = nil
	}
	p.mu.Unlock()
}

// pause waits for a signal, for d, or for ctx to end (reported as
// ErrPendingTimeout wrapping ctx's error).
func (p *Pool) pause(ctx context.Context, d time.Duration) error {
	p.mu.Lock()
	if p.room == nil {
		p.room = make(chan struct{})
	}
	room := p.room
	p.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-room:
	case <-t.C:
	case <-ctx.Done():
		return fmt.Errorf("%w: %s: %w", ErrPendingTimeout, p.opts.Address, context.Cause(ctx))
	}
	return nil
}

// waitRoom calls try until it returns anything but ErrOverflow, pausing
// before each try.
func (p *Pool) waitRoom(ctx context.Context, try func() error) error {
	p.beginWait()
	defer p.endWait()
	for d := time.Millisecond; ; d = min(2*d, maxOverflowPoll) {
		if err := p.pause(ctx, d); err != nil {
			return err
		}
		if err := try(); !errors.Is(err, ErrOverflow) {
			return err
		}
	}
}

// WaitGet is for a request whose Get failed with ErrOverflow: it waits
// (see above) and tries again, without counting the overflow again, until
// it has a connection, another error, or ctx ends (ErrPendingTimeout).
func (p *Pool) WaitGet(ctx context.Context) (*Conn, error) {
	var c *Conn
	err := p.waitRoom(ctx, func() (err error) {
		c, err = p.get(ctx, false, time.Now())
		return err
	})
	return c, err
}

// WaitDial is for a request whose Dial failed with ErrOverflow: it waits
// as WaitGet does, without counting the overflow again, until it could
// open a new connection, got another error, or ctx ended
// (ErrPendingTimeout). Unlike WaitGet it never hands out an idle
// connection: its caller needs a fresh one (a re-send after a stale
// reuse).
func (p *Pool) WaitDial(ctx context.Context) (*Conn, error) {
	var c *Conn
	err := p.waitRoom(ctx, func() (err error) {
		c, err = p.dialConn(ctx, false)
		return err
	})
	return c, err
}

// beginWait and endWait bracket a request's wait: it is a waiter to signal
// and counts in upstream_rq_pending_total and _active.
func (p *Pool) beginWait() {
	p.waiters.Add(1)
	if st := p.opts.Stats; st != nil {
		st.UpstreamRqPendingTotal.Inc()
		st.UpstreamRqPendingActive.Inc()
	}
}

func (p *Pool) endWait() {
	p.waiters.Add(-1)
	if st := p.opts.Stats; st != nil {
		st.UpstreamRqPendingActive.Dec()
	}
}
