package e2e

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

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
	url := "http://" + p.Addr("http") + "/work"

	var clients []*longClient
	for i := range 4 {
		cl := &longClient{id: i}
		cl.c = h2cClient(&cl.dials)
		clients = append(clients, cl)
	}
	stopClients := runLong(url, clients)
	defer stopClients()
	waitProgress(t, clients, 20)

	supervisor := p.Pid()
	restarts := 0
	for r := 1; r <= 4; r++ {
		restarts++
		if r%2 == 1 {
			reloadOK(t, p, fmt.Sprintf("reload %d", r/2+1))
		} else {
			next := upgradeOK(t, p, fmt.Sprintf("upgrade %d", r/2))
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
		cl.check(t, 2, int64(restarts+1), fmt.Sprintf("across %d restarts (the drains move it)", restarts))
	}
	t.Logf("%d requests across %d restarts; dials %d %d %d %d", total, restarts,
		clients[0].dials.Load(), clients[1].dials.Load(), clients[2].dials.Load(), clients[3].dials.Load())
}
