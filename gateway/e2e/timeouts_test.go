package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// withHCM adds lines (TOML keys of the connection manager's config table,
// e.g. `request_headers_timeout = "200ms"`) to a config built by config().
func withHCM(cfg string, lines ...string) string {
	const anchor = "    route_config = \"local\"\n"
	extra := ""
	for _, l := range lines {
		extra += "    " + l + "\n"
	}
	return strings.Replace(cfg, anchor, anchor+extra, 1)
}

// TestRequestHeadersTimeoutAnswers408AndCloses sends the start of a request
// head and stops: once request_headers_timeout has passed since the first
// byte, sluice answers 408 with Connection: close and closes. An idle
// connection that sent nothing is not affected, nor is a complete request.
func TestRequestHeadersTimeoutAnswers408AndCloses(t *testing.T) {
	const timeout = 200 * time.Millisecond
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	}))
	p := gwtest.Start(t, withHCM(simpleConfig(1, up.Addr), `request_headers_timeout = "200ms"`))

	t.Run("partial head gets 408 and a close", func(t *testing.T) {
		conn := dial(t, p.Addr("http"))
		start := time.Now()
		fmt.Fprintf(conn, "GET /slow HTTP/1.1\r\nHost: e2e\r\n")
		br := bufio.NewReader(conn)
		resp, body := readResponse(t, br, "GET")
		elapsed := time.Since(start)
		if resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
			t.Fatalf("status %d, close %v, body %q; want 408 with Connection: close", resp.StatusCode, resp.Close, body)
		}
		if !strings.Contains(string(body), "request_header_timeout") {
			t.Errorf("body %q does not name request_header_timeout", body)
		}
		if elapsed < timeout {
			t.Errorf("408 after %v, before request_headers_timeout %v", elapsed, timeout)
		}
		assertClosed(t, conn, br)
	})

	t.Run("idle connection then a whole request is served", func(t *testing.T) {
		conn := dial(t, p.Addr("http"))
		// The timer starts with the first byte of a head, not with the
		// connection: outwait it before sending anything.
		time.Sleep(2 * timeout)
		fmt.Fprintf(conn, "GET /late HTTP/1.1\r\nHost: e2e\r\n\r\n")
		br := bufio.NewReader(conn)
		resp, body := readResponse(t, br, "GET")
		if resp.StatusCode != 200 || string(body) != "ok" || resp.Close {
			t.Fatalf("status %d, close %v, body %q; want 200 ok on a kept-alive connection", resp.StatusCode, resp.Close, body)
		}
	})
}

// streamIdleConfig routes /hang to an upstream that never answers, with the
// route timeout disabled, stream_idle_timeout = "200ms" and a JSON access
// log with the response flags at logPath.
func streamIdleConfig(hang, logPath string) string {
	return withHCM(config(1, route(`prefix = "/"`, "hang", `timeout = "0s"`), cluster("hang", hang)),
		`stream_idle_timeout = "200ms"`,
		`[[listener.filter_chain.filter.config.access_log]]`,
		fmt.Sprintf("path = %q", logPath),
		`json_format = { code = "%RESPONSE_CODE%", flags = "%RESPONSE_FLAGS%", path = "%REQ(:PATH)%" }`)
}

// TestStreamIdleTimeoutAnswers408WhenUpstreamIsSilent sends requests to an
// upstream that never answers with no route timeout: after
// stream_idle_timeout sluice answers 408 with flag SI. A request whose body
// stops arriving gets the same answer.
func TestStreamIdleTimeoutAnswers408WhenUpstreamIsSilent(t *testing.T) {
	const timeout = 200 * time.Millisecond
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hang := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		<-release
	}))
	logPath := filepath.Join(t.TempDir(), "access.log")
	p := gwtest.Start(t, streamIdleConfig(hang.Addr, logPath))

	t.Run("silent upstream", func(t *testing.T) {
		conn := dial(t, p.Addr("http"))
		start := time.Now()
		fmt.Fprintf(conn, "GET /hang HTTP/1.1\r\nHost: e2e\r\n\r\n")
		resp, body := readResponse(t, bufio.NewReader(conn), "GET")
		elapsed := time.Since(start)
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "stream_idle_timeout") {
			t.Fatalf("status %d, body %q; want 408 stream_idle_timeout", resp.StatusCode, body)
		}
		if elapsed < timeout {
			t.Errorf("408 after %v, before stream_idle_timeout %v", elapsed, timeout)
		}
	})

	t.Run("stalled request body", func(t *testing.T) {
		conn := dial(t, p.Addr("http"))
		start := time.Now()
		fmt.Fprintf(conn, "POST /body HTTP/1.1\r\nHost: e2e\r\nContent-Length: 10\r\n\r\nabc")
		br := bufio.NewReader(conn)
		resp, body := readResponse(t, br, "POST")
		elapsed := time.Since(start)
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "stream_idle_timeout") || !resp.Close {
			t.Fatalf("status %d, close %v, body %q; want 408 stream_idle_timeout with Connection: close", resp.StatusCode, resp.Close, body)
		}
		if elapsed < timeout {
			t.Errorf("408 after %v, before stream_idle_timeout %v", elapsed, timeout)
		}
		assertClosed(t, conn, br)
	})

	for _, l := range waitJSONLines(t, logPath, 2) {
		if l["code"] != "408" || l["flags"] != "SI" {
			t.Errorf("access log line %v: want code 408, flags SI", l)
		}
	}
}

// TestMaxConnectionDurationEndsDownstreamConnections checks
// max_connection_duration: an idle HTTP/1.1 connection is closed when it
// passes, a response sent after it carries Connection: close, and an HTTP/2
// connection gets the graceful GOAWAY pair and closes.
func TestMaxConnectionDurationEndsDownstreamConnections(t *testing.T) {
	const maxDur = 300 * time.Millisecond
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(maxDur + 100*time.Millisecond) // outlive the connection's duration
		}
		fmt.Fprint(w, "ok")
	}))
	p := gwtest.Start(t, withHCM(simpleConfig(1, up.Addr), `max_connection_duration = "300ms"`))

	t.Run("idle HTTP/1.1 connection closed", func(t *testing.T) {
		start := time.Now()
		conn := dial(t, p.Addr("http"))
		fmt.Fprintf(conn, "GET /fast HTTP/1.1\r\nHost: e2e\r\n\r\n")
		br := bufio.NewReader(conn)
		resp, body := readResponse(t, br, "GET")
		if resp.StatusCode != 200 || string(body) != "ok" || resp.Close {
			t.Fatalf("status %d, close %v, body %q; want 200 ok, kept alive", resp.StatusCode, resp.Close, body)
		}
		assertClosed(t, conn, br)
		if elapsed := time.Since(start); elapsed < maxDur {
			t.Errorf("closed after %v, before max_connection_duration %v", elapsed, maxDur)
		}
	})

	t.Run("HTTP/1.1 response after it carries Connection: close", func(t *testing.T) {
		conn := dial(t, p.Addr("http"))
		fmt.Fprintf(conn, "GET /slow HTTP/1.1\r\nHost: e2e\r\n\r\n")
		br := bufio.NewReader(conn)
		resp, body := readResponse(t, br, "GET")
		if resp.StatusCode != 200 || string(body) != "ok" || !resp.Close {
			t.Fatalf("status %d, close %v, body %q; want 200 ok with Connection: close", resp.StatusCode, resp.Close, body)
		}
		assertClosed(t, conn, br)
	})

	t.Run("HTTP/2 connection gets GOAWAY", func(t *testing.T) {
		start := time.Now()
		_, fr := rawH2Get(t, p.Addr("http"), "/fast")
		var goaways []uint32
		var firstGoaway time.Duration
		gotBody := false
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				break // the connection closed after the final GOAWAY
			}
			ackControl(fr, f)
			switch f := f.(type) {
			case *http2.GoAwayFrame:
				if len(goaways) == 0 {
					firstGoaway = time.Since(start)
				}
				goaways = append(goaways, f.LastStreamID)
			case *http2.DataFrame:
				if f.StreamID == 1 && string(f.Data()) == "ok" {
					gotBody = true
				}
			}
		}
		if !gotBody {
			t.Fatal("the request before max_connection_duration was not answered")
		}
		if len(goaways) < 2 || goaways[0] != 1<<31-1 || goaways[len(goaways)-1] != 1 {
			t.Fatalf("GOAWAY last-stream ids %v, want 2147483647 then 1", goaways)
		}
		if firstGoaway < maxDur {
			t.Errorf("GOAWAY after %v, before max_connection_duration %v", firstGoaway, maxDur)
		}
	})
}

// TestClusterMaxConnectionDurationRetiresUpstreamConnections sends two
// requests with a pause longer than the cluster's max_connection_duration
// between them: the second goes on a new upstream connection, while two
// back-to-back requests share one.
func TestClusterMaxConnectionDurationRetiresUpstreamConnections(t *testing.T) {
	const maxDur = 200 * time.Millisecond
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	p := gwtest.Start(t, config(1, route(`prefix = "/"`, "up"), cluster("up", up.Addr)+"max_connection_duration = \"200ms\"\n"))
	c := newClient(nil)
	base := "http://" + p.Addr("http")
	before := up.ConnCount()
	for range 2 {
		if resp, body := get(t, c, base+"/a"); resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("status %d, body %q", resp.StatusCode, body)
		}
	}
	if n := up.ConnCount() - before; n != 1 {
		t.Fatalf("back-to-back requests used %d upstream connections, want 1", n)
	}
	time.Sleep(maxDur + 50*time.Millisecond) // let the upstream connection pass its duration
	if resp, body := get(t, c, base+"/b"); resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("status %d, body %q", resp.StatusCode, body)
	}
	if n := up.ConnCount() - before; n != 2 {
		t.Fatalf("upstream accepted %d connections, want 2 (the first one is past max_connection_duration)", n)
	}
}

// waitJSONLines waits until the JSON access log at path has n lines (they
// are written by a background writer) and returns them.
func waitJSONLines(t *testing.T, path string, n int) []map[string]string {
	t.Helper()
	var lines []map[string]string
	deadline := time.Now().Add(ioTimeout)
	for len(lines) < n {
		if time.Now().After(deadline) {
			t.Fatalf("access log has %d lines, want %d", len(lines), n)
		}
		time.Sleep(20 * time.Millisecond) // polling a file another process appends to
		lines = readJSONLines(t, path)
	}
	return lines
}
