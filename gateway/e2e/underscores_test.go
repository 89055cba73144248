package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// TestHeadersWithUnderscoresAction checks headers_with_underscores_action
// as Envoy's codecs apply it, counted in Envoy's http1./http2. codec stats:
// ALLOW (default) forwards x_user; DROP_HEADER removes it and forwards the
// rest; REJECT_REQUEST answers an HTTP/1.1 request 400 with details
// http1.unexpected_underscore and closes, and resets an HTTP/2 stream.
func TestHeadersWithUnderscoresAction(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "x_user=%s x-ok=%s", r.Header.Get("x_user"), r.Header.Get("x-ok"))
	}))
	for _, tc := range []struct{ action, want string }{
		{"", "x_user=a x-ok=b"},
		{"DROP_HEADER", "x_user= x-ok=b"},
		{"REJECT_REQUEST", ""},
	} {
		t.Run("action="+tc.action, func(t *testing.T) {
			opts := ""
			if tc.action != "" {
				opts = fmt.Sprintf("headers_with_underscores_action = %q", tc.action)
			}
			p := gwtest.Start(t, h2Config(opts, route(`prefix = "/"`, "up"), cluster("up", up.Addr))+"\n[admin]\naddress = \"127.0.0.1:0\"\n")
			admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)

			// HTTP/1.1, raw: the 400 and the close are seen as sent.
			c := dial(t, p.Addr("http"))
			br := bufio.NewReader(c)
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nx_user: a\r\nx-ok: b\r\n\r\n")
			resp, body := readResponse(t, br, "GET")
			if tc.action == "REJECT_REQUEST" {
				if resp.StatusCode != 400 || !strings.Contains(string(body), "http1.unexpected_underscore") {
					t.Errorf("HTTP/1.1: %d %q, want 400 naming http1.unexpected_underscore", resp.StatusCode, body)
				}
				assertClosed(t, c, br)
			} else if resp.StatusCode != 200 || string(body) != tc.want {
				t.Errorf("HTTP/1.1: %d %q, want 200 %q", resp.StatusCode, body, tc.want)
			}

			// HTTP/2.
			h2 := h2cClient(nil)
			req, _ := http.NewRequest("GET", "http://"+p.Addr("http")+"/", nil)
			req.Header.Set("x_user", "a")
			req.Header.Set("x-ok", "b")
			r2, err := h2.Do(req)
			if tc.action == "REJECT_REQUEST" {
				if err == nil {
					r2.Body.Close()
					t.Errorf("HTTP/2: %d, want the stream reset", r2.StatusCode)
				}
			} else {
				if err != nil {
					t.Fatalf("HTTP/2: %v", err)
				}
				b := make([]byte, 64)
				n, _ := r2.Body.Read(b)
				r2.Body.Close()
				if string(b[:n]) != tc.want {
					t.Errorf("HTTP/2: %q, want %q", b[:n], tc.want)
				}
			}

			st := adminCounters(t, admin)
			want := map[string]float64{}
			switch tc.action {
			case "DROP_HEADER":
				want["http1.dropped_headers_with_underscores"], want["http2.dropped_headers_with_underscores"] = 1, 1
			case "REJECT_REQUEST":
				want["http1.requests_rejected_with_underscores_in_headers"], want["http2.requests_rejected_with_underscores_in_headers"] = 1, 1
			}
			for _, n := range []string{"http1.dropped_headers_with_underscores", "http2.dropped_headers_with_underscores",
				"http1.requests_rejected_with_underscores_in_headers", "http2.requests_rejected_with_underscores_in_headers"} {
				if st[n] != want[n] {
					t.Errorf("%s = %v, want %v", n, st[n], want[n])
				}
			}
		})
	}
}

// TestHeadersWithUnderscoresActionAppliesToTrailers checks that request
// trailers get headers_with_underscores_action as the head does (Envoy's
// codecs check every field block): DROP_HEADER removes x_t and forwards
// x-ok, REJECT_REQUEST answers an HTTP/1.1 request 400
// http1.unexpected_underscore and resets an HTTP/2 stream, so that a name
// the head may not carry cannot reach the upstream as a trailer.
func TestHeadersWithUnderscoresActionAppliesToTrailers(t *testing.T) {
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "body=%s x_t=%s x-ok=%s", b, r.Trailer.Get("x_t"), r.Trailer.Get("x-ok"))
	}))
	for _, action := range []string{"DROP_HEADER", "REJECT_REQUEST"} {
		t.Run(action, func(t *testing.T) {
			p := gwtest.Start(t, h2Config(fmt.Sprintf("headers_with_underscores_action = %q", action),
				route(`prefix = "/"`, "up"), cluster("up", up.Addr)))
			const want = "body=abc x_t= x-ok=2"

			c := dial(t, p.Addr("http"))
			br := bufio.NewReader(c)
			fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx_t: 1\r\nx-ok: 2\r\n\r\n")
			resp, body := readResponse(t, br, "POST")
			if action == "REJECT_REQUEST" {
				if resp.StatusCode != 400 || !strings.Contains(string(body), "http1.unexpected_underscore") {
					t.Errorf("HTTP/1.1 trailers: %d %q, want 400 naming http1.unexpected_underscore", resp.StatusCode, body)
				}
			} else if resp.StatusCode != 200 || string(body) != want {
				t.Errorf("HTTP/1.1 trailers: %d %q, want 200 %q", resp.StatusCode, body, want)
			}

			req, _ := http.NewRequest("POST", "http://"+p.Addr("http")+"/", io.NopCloser(strings.NewReader("abc")))
			req.ContentLength = -1
			req.Trailer = http.Header{"X_t": {"1"}, "X-Ok": {"2"}}
			r2, err := h2cClient(nil).Do(req)
			if action == "REJECT_REQUEST" {
				if err == nil {
					b, _ := io.ReadAll(r2.Body)
					r2.Body.Close()
					t.Errorf("HTTP/2 trailers: %d %q, want the stream reset", r2.StatusCode, b)
				}
				return
			}
			if err != nil {
				t.Fatalf("HTTP/2 trailers: %v", err)
			}
			b, _ := io.ReadAll(r2.Body)
			r2.Body.Close()
			if r2.StatusCode != 200 || string(b) != want {
				t.Errorf("HTTP/2 trailers: %d %q, want 200 %q", r2.StatusCode, b, want)
			}
		})
	}
}
