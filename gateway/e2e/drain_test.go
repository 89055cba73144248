package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// TestSIGTERMDrainsInFlightRequests sends SIGTERM while a request waits on
// a slow upstream and checks that the request still completes, that sluice
// exits 0, and that a connection opened after the drain started is never
// served.
func TestSIGTERMDrainsInFlightRequests(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		fmt.Fprintf(w, "done %s", r.URL.Path)
	}))
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
	})
	p := gwtest.Start(t, simpleConfig(2, up.Addr))
	addr := p.Addr("http")

	type result struct {
		status int
		body   string
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		resp, err := newClient(nil).Get("http://" + addr + "/slow")
		if err != nil {
			inflight <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		inflight <- result{resp.StatusCode, string(b), err}
	}()
	select {
	case <-entered:
	case <-time.After(ioTimeout):
		t.Fatal("the request never reached the upstream")
	}

	mark := p.Mark()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Every worker logs "draining" once it has stopped accepting; from then
	// on new connections must not be served.
	for slot := range p.WorkerPids() {
		p.WaitLogSince(t, mark, "draining", func(e map[string]any) bool {
			return intField(e, "slot") == slot
		}, ioTimeout)
	}

	late := make(chan string, 1)
	go func() {
		c, err := net.DialTimeout("tcp", addr, ioTimeout)
		if err != nil {
			late <- "" // refused: fine
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(c, "GET /after-drain HTTP/1.1\r\nHost: e2e\r\n\r\n")
		b, _ := io.ReadAll(bufio.NewReader(c))
		late <- string(b)
	}()

	close(release)
	released = true
	select {
	case r := <-inflight:
		if r.err != nil || r.status != 200 || r.body != "done /slow" {
			t.Errorf("in-flight request: status %d, body %q, err %v; want 200, %q", r.status, r.body, r.err, "done /slow")
		}
	case <-time.After(ioTimeout):
		t.Fatal("the in-flight request did not complete after SIGTERM")
	}
	select {
	case <-p.Exited():
	case <-time.After(20 * time.Second):
		t.Fatal("sluice did not exit after draining")
	}
	if code := p.Wait(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	select {
	case got := <-late:
		if got != "" {
			t.Errorf("a connection opened after the drain started got an answer: %q", truncate([]byte(got), 200))
		}
	case <-time.After(ioTimeout):
		t.Fatal("a connection opened after the drain started is still open after sluice exited")
	}
	for _, target := range up.Targets() {
		if target == "/after-drain" {
			t.Errorf("the upstream received a request sent after the drain started")
		}
	}
}

// TestDrainTimeoutClosesWhatIsLeftAndSaysSo holds a request at the upstream
// past drain_timeout: the worker closes its connection over the last
// drain_jitter, logs how many connections it closed, and exits.
func TestDrainTimeoutClosesWhatIsLeftAndSaysSo(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	}))
	cfg := strings.Replace(simpleConfig(1, up.Addr), `drain_timeout = "10s"`, "drain_timeout = \"2s\"\ndrain_jitter = \"1s\"", 1)
	p := gwtest.Start(t, cfg)
	c := dial(t, p.Addr("http"))
	fmt.Fprintf(c, "GET /held HTTP/1.1\r\nHost: e2e\r\n\r\n")
	select {
	case <-entered:
	case <-time.After(ioTimeout):
		t.Fatal("the request never reached the upstream")
	}
	mark := p.Mark()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	e := p.WaitLogSince(t, mark, "drain timeout near, closing the connections left", nil, ioTimeout)
	if n := intField(e, "connections"); n != 1 {
		t.Errorf("the log says %d connections were left, want 1: %v", n, e)
	}
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	if b, err := io.ReadAll(c); err != nil && !isReset(err) || len(b) > 0 {
		t.Errorf("the held connection: read %q, %v; want a close without a response", b, err)
	}
	select {
	case <-p.Exited():
	case <-time.After(ioTimeout):
		t.Fatal("sluice did not exit after the drain timeout")
	}
}
