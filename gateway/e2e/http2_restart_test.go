package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// h2LongClient posts over one HTTP/2 (h2c) connection at a time, as a
// long-lived client of an edge proxy does, and counts what happens.
type h2LongClient struct {
	id     int
	client *http.Client
	dials  atomic.Int64
	ok     atomic.Int64
	mu     sync.Mutex
	failed []string
}

func newH2LongClient(id int) *h2LongClient {
	cl := &h2LongClient{id: id}
	cl.client = &http.Client{Timeout: ioTimeout, Transport: &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			cl.dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
	return cl
}

// run posts until stop is closed; a failed request or a wrong echo is
// recorded.
func (cl *h2LongClient) run(url string, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		body := []byte(fmt.Sprintf("client %d request %d", cl.id, i))
		req, err := http.NewRequest("POST", url, bytes.NewReader(body))
		if err != nil {
			cl.fail(err.Error())
			return
		}
		resp, err := cl.client.Do(req)
		if err != nil {
			cl.fail(err.Error())
			continue
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, body) {
			cl.fail(fmt.Sprintf("%d %q %v", resp.StatusCode, got, err))
			continue
		}
		cl.ok.Add(1)
	}
}

func (cl *h2LongClient) fail(what string) {
	cl.mu.Lock()
	cl.failed = append(cl.failed, what)
	cl.mu.Unlock()
}

// TestHTTP2ClientsLoseNoRequestAcrossReloadsAndUpgrades: HTTP/2 clients
// post without pause over long-lived connections while sluice reloads
// twice and upgrades its binary twice. Each restart drains the old
// generation's connections with the two-step GOAWAY; no request may fail,
// and each client opens one connection per restart at most: the GOAWAY
// moves it to the new generation, nothing resets it. (Two workers, so that
// a client a drained worker sends away could land on the other worker of
// the old generation if that one still accepted: the supervisor stops
// every worker of it from accepting before it drains any.)
func TestHTTP2ClientsLoseNoRequestAcrossReloadsAndUpgrades(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(slowEcho))
	p := gwtest.Start(t, simpleConfig(2, up.Addr))
	control := p.RuntimeDir + "/control.sock"
	url := "http://" + p.Addr("http") + "/work"

	var clients []*h2LongClient
	var runs []func(<-chan struct{})
	for i := range 4 {
		cl := newH2LongClient(i)
		clients = append(clients, cl)
		runs = append(runs, func(stop <-chan struct{}) { cl.run(url, stop) })
	}
	stopClients := runUntilStopped(runs...)
	defer stopClients()
	// progress waits until every client has n more good requests.
	progress := func(n int64, what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for _, cl := range clients {
			want := cl.ok.Load() + n
			for cl.ok.Load() < want {
				if time.Now().After(deadline) {
					t.Fatalf("%s: client %d made no progress (%d requests)", what, cl.id, cl.ok.Load())
				}
				time.Sleep(5 * time.Millisecond) // polling the clients' counters
			}
		}
	}
	progress(20, "start")

	supervisor := p.Pid()
	restarts := 0
	for r := 1; r <= 4; r++ {
		restarts++
		if r%2 == 1 {
			if code, out := gwtest.Exec(t, 60*time.Second, "reload", "-c", p.ConfigPath, "--control", control); code != 0 {
				t.Fatalf("reload: exit %d: %s", code, out)
			}
		} else {
			code, out := gwtest.Exec(t, 60*time.Second, "upgrade", "--control", control)
			m := upgradedRE.FindStringSubmatch(out)
			if code != 0 || m == nil {
				t.Fatalf("upgrade: exit %d: %s", code, out)
			}
			next, _ := strconv.Atoi(m[1])
			t.Cleanup(func() { syscall.Kill(next, syscall.SIGKILL) })
			waitPidGone(t, supervisor)
			supervisor = next
		}
		progress(20, fmt.Sprintf("restart %d", r))
	}
	stopClients()
	total := int64(0)
	for _, cl := range clients {
		total += cl.ok.Load()
		if len(cl.failed) > 0 {
			t.Errorf("client %d: %d failed requests: %q", cl.id, len(cl.failed), cl.failed)
		}
		if d := cl.dials.Load(); d > int64(restarts+1) || d < 2 {
			t.Errorf("client %d dialled %d connections across %d restarts, want 2 to %d (the drains move it)", cl.id, d, restarts, restarts+1)
		}
	}
	t.Logf("%d requests across %d restarts; dials %d %d %d %d", total, restarts,
		clients[0].dials.Load(), clients[1].dials.Load(), clients[2].dials.Load(), clients[3].dials.Load())
}
