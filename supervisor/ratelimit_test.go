package supervisor_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rateLimitFilter is the HTTP local_ratelimit filter with a bucket of 5
// tokens that refills only after an hour, and the x-ratelimit-* headers.
const rateLimitFilter = `
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.local_ratelimit"
      [listener.filter_chain.filter.config.http_filter.config]
      stat_prefix = "rl"
      enable_x_ratelimit_headers = "DRAFT_VERSION_03"
      token_bucket = { max_tokens = 5, tokens_per_fill = 5, fill_interval = "1h" }
`

// TestHTTPLocalRateLimitIsGlobalAndCounted sends 20 requests on new
// connections to two workers sharing one bucket of 5 tokens: exactly 5
// pass, 15 get 429 with the x-ratelimit headers, and /stats counts both.
func TestHTTPLocalRateLimitIsGlobalAndCounted(t *testing.T) {
	t.Parallel()
	up := newFakeHost(t)
	s := start(t, obsConfig(up.addr, controlPath(t), obsOptions{filters: rateLimitFilter}))
	addr := s.listenAddr(t, "public")
	admin := s.adminAddr(t)
	s.wait(t, "ready", nil, nil)
	ok, limited := 0, 0
	for range 20 {
		tr := &http.Transport{DisableKeepAlives: true}
		resp, err := (&http.Client{Transport: tr, Timeout: waitTimeout}).Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case 200:
			ok++
		case 429:
			limited++
			if string(body) != "local_rate_limited" || resp.Header.Get("x-ratelimit-limit") != "5" ||
				resp.Header.Get("x-ratelimit-remaining") != "0" {
				t.Fatalf("429 %q, headers %v; want body local_rate_limited, x-ratelimit-limit 5, remaining 0", body, resp.Header)
			}
		default:
			t.Fatalf("status %d %q", resp.StatusCode, body)
		}
	}
	if ok != 5 || limited != 15 {
		t.Fatalf("%d passed, %d limited; want 5 and 15 (one bucket across both workers)", ok, limited)
	}
	if n := up.served.Load(); n != 5 {
		t.Fatalf("the upstream served %d requests, want 5", n)
	}
	c := counters(t, admin)
	for name, want := range map[string]float64{"enabled": 20, "ok": 5, "rate_limited": 15, "enforced": 15} {
		if got := c["http_local_rate_limit.rl."+name]; got != want {
			t.Errorf("http_local_rate_limit.rl.%s = %v, want %v", name, got, want)
		}
	}
}

// TestNetworkLocalRateLimitClosesConnectionsAndCounts opens connections to
// a tcp_proxy listener behind a network local_ratelimit of 3 tokens: three
// are proxied, the others are closed at once and counted.
func TestNetworkLocalRateLimitClosesConnectionsAndCounts(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	cfg := obsConfig(ln.Addr().String(), controlPath(t), obsOptions{}) + `
[[listener]]
name = "tcp"
address = "127.0.0.1:0"

  [[listener.filter_chain]]
  name = "tcp"

    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.local_ratelimit"
    [listener.filter_chain.filter.config]
    stat_prefix = "conns"
    token_bucket = { max_tokens = 3, tokens_per_fill = 3, fill_interval = "1h" }

    [[listener.filter_chain.filter]]
    name = "sluice.filters.network.tcp_proxy"
    [listener.filter_chain.filter.config]
    stat_prefix = "tcp"
    cluster = "backend"
`
	s := start(t, cfg)
	addr := s.listenAddr(t, "tcp")
	admin := s.adminAddr(t)
	s.wait(t, "ready", nil, nil)
	echoed, closed := 0, 0
	for range 8 {
		c, err := net.DialTimeout("tcp", addr, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(waitTimeout))
		io.WriteString(c, "ping")
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err == nil && string(buf) == "ping" {
			echoed++
		} else if err != nil && !strings.Contains(err.Error(), "timeout") {
			closed++
		} else {
			t.Fatalf("connection neither echoed nor closed: %q %v", buf, err)
		}
		c.Close()
	}
	if echoed != 3 || closed != 5 {
		t.Fatalf("%d connections proxied, %d closed; want 3 and 5", echoed, closed)
	}
	if got := counters(t, admin)["local_rate_limit.conns.rate_limited"]; got != 5 {
		t.Errorf("local_rate_limit.conns.rate_limited = %v, want 5", got)
	}
}
