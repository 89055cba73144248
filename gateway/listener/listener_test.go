package listener

import (
	"net"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/netfilter"
)

// signalFilter tells the test it runs, then peeks one byte.
type signalFilter struct {
	started chan struct{}
	err     chan error
}

func (f *signalFilter) NewFilter() netfilter.ListenerFilter { return f }

func (f *signalFilter) OnAccept(cb netfilter.ListenerCallbacks) netfilter.Status {
	close(f.started)
	_, err := cb.Peek(1)
	f.err <- err
	if err != nil {
		return netfilter.StopIteration
	}
	return netfilter.Continue
}

// TestListenerFiltersWithoutTimeoutWait checks that a listener whose
// listener_filters_timeout is 0 (disabled) lets its filters wait for the
// client's first bytes instead of timing out at once.
func TestListenerFiltersWithoutTimeoutWait(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	f := &signalFilter{started: make(chan struct{}), err: make(chan error, 1)}
	l := &Listener{Name: "l", Cfg: &config.Listener{}, ListenerFilters: []netfilter.ListenerFilterFactory{f}, Log: zap.NewNop()}
	done := make(chan bool, 1)
	go func() {
		_, ok := l.runListenerFilters(server, nil, &netfilter.Info{})
		done <- ok
	}()
	select {
	case <-f.started:
	case <-time.After(5 * time.Second):
		t.Fatal("the listener filter did not run")
	}
	client.Write([]byte{0x16})
	select {
	case err := <-f.err:
		if err != nil {
			t.Fatalf("peek with the timeout disabled: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the peek did not return after the client wrote")
	}
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("the connection was closed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the listener filters did not finish")
	}
}
