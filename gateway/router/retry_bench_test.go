package router_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/server"
)

// benchUpstream is a real HTTP/1.1 upstream on 127.0.0.1 answering status
// to every request.
func benchUpstream(b *testing.B, status int, hits *atomic.Int64) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(status)
		io.WriteString(w, "ok")
	})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// benchProxy serves, in this process, a generation routing every request
// to a round-robin cluster of hosts with a 5xx retry policy (previous
// hosts, backoff of 1ns so that only the retry's own work is measured).
func benchProxy(b *testing.B, name string, hosts ...string) string {
	b.Helper()
	text := fmt.Sprintf(`
[[listener]]
name = "l"
address = "127.0.0.1:0"
[[listener.filter_chain]]
[[listener.filter_chain.filter]]
name = "sluice.filters.network.http_connection_manager"
[listener.filter_chain.filter.config]
stat_prefix = "b"
route_config = "r"
[[listener.filter_chain.filter.config.http_filter]]
name = "sluice.filters.http.router"
[[route_config]]
name = "r"
[[route_config.virtual_host]]
name = "all"
domains = ["*"]
[[route_config.virtual_host.route]]
match = { prefix = "/" }
cluster = %q
retry_policy = { retry_on = ["5xx"], num_retries = 1, retry_host_predicate = ["previous_hosts"], retry_back_off = { base_interval = "1ns", max_interval = "1ns" } }
[[cluster]]
name = %q
endpoints = [%q, %q]
`, name, name, hosts[0], hosts[1])
	cfg, err := config.Parse(name+".toml", []byte(text))
	if err != nil {
		b.Fatal(err)
	}
	g, err := server.Build(cfg, server.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(g.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go g.Serve("l", ln)
	return ln.Addr().String()
}

// BenchmarkRetry measures a request through the router over real
// loopback sockets, without a retry (both hosts answer 200) and with one
// retry per request (round robin sends every first try to the host
// answering 503, the retry goes to the other).
func BenchmarkRetry(b *testing.B) {
	for _, bc := range []struct {
		name      string
		badStatus int
	}{{"no_retry", 200}, {"one_retry", 503}} {
		b.Run(bc.name, func(b *testing.B) {
			var badHits, goodHits atomic.Int64
			bad := benchUpstream(b, bc.badStatus, &badHits)
			good := benchUpstream(b, 200, &goodHits)
			addr := benchProxy(b, "bench_"+bc.name, bad, good)
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			b.Cleanup(c.CloseIdleConnections)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.Get("http://" + addr + "/")
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			if bc.badStatus != 200 {
				b.ReportMetric(float64(badHits.Load())/float64(goodHits.Load()), "retries/op")
			}
		})
	}
}
