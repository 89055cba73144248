package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/server"
)

// genConfig answers every request with a direct response naming the
// generation, except /slow, which goes to the given upstream.
func genConfig(t *testing.T, name, upstream string) *config.Config {
	t.Helper()
	text := fmt.Sprintf(`
[[listener]]
name = "l"
address = "127.0.0.1:0"
[[listener.filter_chain]]
[[listener.filter_chain.filter]]
name = "sluice.filters.network.http_connection_manager"
[listener.filter_chain.filter.config]
stat_prefix = "t"
route_config = "r"
[[listener.filter_chain.filter.config.http_filter]]
name = "sluice.filters.http.router"
[[route_config]]
name = "r"
[[route_config.virtual_host]]
name = "all"
domains = ["*"]
[[route_config.virtual_host.route]]
match = { path = "/slow" }
cluster = "up"
[[route_config.virtual_host.route]]
match = { prefix = "/" }
direct_response = { status = 200, body = %q }
[[cluster]]
name = "up"
endpoints = [%q]
`, name, upstream)
	cfg, err := config.Parse(name+".toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// twoGenerations serves gen1 on a loopback listener; draining gen1 hands its
// connections to gen2 in the same process (the worker does the same across
// processes through the supervisor).
func twoGenerations(t *testing.T, upstream string) (addr string, g1 *server.Generation) {
	t.Helper()
	g2, err := server.Build(genConfig(t, "gen2", upstream), server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g2.Close)
	handoff := func(listener string, f *os.File, readAhead []byte) error {
		fd, err := syscall.Dup(int(f.Fd()))
		if err != nil {
			return err
		}
		return g2.Adopt(listener, os.NewFile(uintptr(fd), "handed-off"), append([]byte(nil), readAhead...))
	}
	g1, err = server.Build(genConfig(t, "gen1", upstream), server.Options{Handoff: handoff})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g1.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g1.Serve("l", ln)
	return ln.Addr().String(), g1
}

func get(t *testing.T, c net.Conn, br *bufio.Reader, path string) (string, http.Header) {
	t.Helper()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	return readResponse(t, br)
}

func readResponse(t *testing.T, br *bufio.Reader) (string, http.Header) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body), resp.Header
}

func drain(g *server.Generation) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		g.Drain(ctx)
		close(done)
	}()
	return done
}

func TestDrainHandsIdleKeepAliveConnectionToNextGeneration(t *testing.T) {
	addr, g1 := twoGenerations(t, "127.0.0.1:1")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	if body, _ := get(t, c, br, "/"); body != "gen1" {
		t.Fatalf("first response from %q, want gen1", body)
	}
	<-drain(g1) // returns once the idle connection has left gen1
	if n := g1.Connections(); n != 0 {
		t.Fatalf("gen1 still holds %d connections", n)
	}
	for i := range 3 {
		body, h := get(t, c, br, "/")
		if body != "gen2" || h.Get("Connection") == "close" {
			t.Fatalf("request %d after the drain: body %q, Connection %q; want gen2 on the same connection", i, body, h.Get("Connection"))
		}
	}
}

func TestDrainHandsOffAfterInFlightResponseWithoutConnectionClose(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{})
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		io.WriteString(w, "slow")
	})}
	uln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go up.Serve(uln)
	t.Cleanup(func() { up.Close() })
	addr, g1 := twoGenerations(t, uln.Addr().String())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-arrived
	done := drain(g1)
	close(release)
	body, h := readResponse(t, br)
	if body != "slow" || h.Get("Connection") == "close" {
		t.Fatalf("in-flight response: body %q, Connection %q; want slow, kept alive", body, h.Get("Connection"))
	}
	<-done
	if body, _ := get(t, c, br, "/"); body != "gen2" {
		t.Fatalf("next response from %q, want gen2", body)
	}
}

func TestDrainHandsOffPartlyReadRequestWithItsBytes(t *testing.T) {
	addr, g1 := twoGenerations(t, "127.0.0.1:1")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	if body, _ := get(t, c, br, "/"); body != "gen1" {
		t.Fatalf("first response from %q, want gen1", body)
	}
	head := "GET /partial HTTP/1.1\r\nHost: x\r\n"
	if _, err := io.WriteString(c, head[:20]); err != nil {
		t.Fatal(err)
	}
	// Whether gen1 has read the first half when the drain starts (then it
	// travels as read-ahead bytes) or not (then it is still in the socket),
	// the request must complete on the same connection.
	<-drain(g1)
	if _, err := io.WriteString(c, head[20:]+"\r\n"); err != nil {
		t.Fatal(err)
	}
	body, _ := readResponse(t, br)
	if !strings.HasPrefix(body, "gen") {
		t.Fatalf("split request answered %q", body)
	}
	if body2, _ := get(t, c, br, "/"); body2 != "gen2" {
		t.Fatalf("next response from %q, want gen2", body2)
	}
}
