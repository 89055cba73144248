package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// h3Resume opens a new QUIC connection to addr from a new client port with
// conf (whose session cache holds the tickets of earlier connections),
// sends one GET, and returns whether the TLS session was resumed and the
// generation and slot of the worker that owns the connection.
func h3Resume(t *testing.T, addr string, conf *tls.Config) (resumed bool, gen, slot int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), ioTimeout)
	defer cancel()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	var owner atomic.Int64
	qt := &quic.Transport{Conn: &ownerSniffer{PacketConn: udp, owner: &owner}}
	defer qt.Close()
	conn, err := qt.Dial(ctx, raddr, conf, &quic.Config{})
	if err != nil {
		t.Fatalf("QUIC dial %s: %v (%s)", addr, err, ownerText(owner.Load()))
	}
	defer conn.CloseWithError(0, "")
	cc := (&http3.Transport{}).NewClientConn(conn)
	req, err := http.NewRequestWithContext(ctx, "GET", "https://"+addr+"/resume", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cc.RoundTrip(req)
	if err != nil {
		t.Fatalf("HTTP/3 GET: %v (%s)", err, ownerText(owner.Load()))
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP/3 GET: status %d", resp.StatusCode)
	}
	o := owner.Load()
	if o == 0 {
		t.Fatal("the server's handshake packets named no owner")
	}
	o--
	return conn.ConnectionState().TLS.DidResume, int(o >> 16), int(o & 0xffff)
}

// ownerText names the worker an ownerSniffer saw answer (0: none seen).
func ownerText(o int64) string {
	if o == 0 {
		return "no server packet named its worker"
	}
	o--
	return fmt.Sprintf("answered by generation %d slot %d", o>>16, o&0xffff)
}

// TestHTTP3SessionsResumeAcrossWorkersReloadAndUpgrade: HTTP/3 session
// tickets are sealed with the supervisor's ticket keys, shared by every
// worker and handed to new generations, so a QUIC client resumes its TLS
// session on a worker other than the one that issued the ticket, after a
// reload, and after a binary upgrade.
func TestHTTP3SessionsResumeAcrossWorkersReloadAndUpgrade(t *testing.T) {
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "h3.test")
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	p := gwtest.Start(t, h3RestartConfig(t, 2, cert, key, up.Addr))
	addr := p.Addr("h3")
	conf := resumableClient(t, ca, addr)

	// New connections from new ports spread over both workers: each
	// resumes, also on the worker that did not issue the ticket.
	slots := map[int]bool{}
	for i := 0; i < 64 && len(slots) < 2; i++ {
		resumed, gen, slot := h3Resume(t, addr, conf)
		if !resumed {
			t.Fatalf("connection %d (generation %d slot %d) did not resume", i, gen, slot)
		}
		slots[slot] = true
	}
	if len(slots) < 2 {
		t.Fatalf("64 connections all landed on slots %v: the other worker was not exercised", slots)
	}

	// The connections opened at once after a reload or an upgrade, while
	// the old generation's workers still read the slots' sockets, belong
	// to the new generation: none is refused or opened on the old one.
	reloadOK(t, p, "reload")
	for i := range 4 {
		if resumed, gen, _ := h3Resume(t, addr, conf); !resumed || gen != 2 {
			t.Fatalf("connection %d after a reload: resumed %v on generation %d, want a resumed session on generation 2", i, resumed, gen)
		}
	}

	upgradeOK(t, p, "upgrade")
	for i := range 4 {
		if resumed, gen, _ := h3Resume(t, addr, conf); !resumed || gen != 3 {
			t.Fatalf("connection %d after an upgrade: resumed %v on generation %d, want a resumed session on generation 3", i, resumed, gen)
		}
	}
}
