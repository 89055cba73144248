package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// h2LongClient posts over one HTTP/2 (h2c) connection at a time, as a
// long-lived client of an edge proxy does, and counts its connections and
// what happens to its requests.
type h2LongClient struct {
	id    int
	c     *http.Client
	dials atomic.Int64
	tally
}

func newH2LongClient(id int) *h2LongClient {
	cl := &h2LongClient{id: id}
	cl.c = h2cClient(&cl.dials)
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
		cl.record(postEcho(cl.c, url, fmt.Sprintf("client %d request %d", cl.id, i)))
	}
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
	waitProgress(t, clients, 20)

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
		t.Logf("restart %d done", r)
		waitProgress(t, clients, 20)
	}
	stopClients()
	total := int64(0)
	for _, cl := range clients {
		total += cl.ok.Load()
		if f := cl.failureList(); len(f) > 0 {
			t.Errorf("client %d: %d failed requests: %q", cl.id, len(f), f)
		}
		if d := cl.dials.Load(); d > int64(restarts+1) || d < 2 {
			t.Errorf("client %d dialled %d connections across %d restarts, want 2 to %d (the drains move it)", cl.id, d, restarts, restarts+1)
		}
	}
	t.Logf("%d requests across %d restarts; dials %d %d %d %d", total, restarts,
		clients[0].dials.Load(), clients[1].dials.Load(), clients[2].dials.Load(), clients[3].dials.Load())
}
