package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// headerEcho answers with the request headers it saw, as JSON.
func headerEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("X-Seen-Host", r.Host)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(h)
	})
}

func decodeHeaders(t *testing.T, body []byte) http.Header {
	t.Helper()
	var h http.Header
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatalf("upstream answer %q: %v", body, err)
	}
	return h
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// TestRequestHeadersAddedAndHopByHopStripped checks the headers sluice adds
// to a proxied request (x-forwarded-for, x-forwarded-proto, x-request-id)
// and the hop-by-hop headers it must not forward.
func TestRequestHeadersAddedAndHopByHopStripped(t *testing.T) {
	up := testutil.Upstream(t, headerEcho())
	p := gwtest.Start(t, simpleConfig(1, up.Addr))
	base := "http://" + p.Addr("http")
	c := newClient(nil)

	t.Run("x-forwarded-for holds the client address", func(t *testing.T) {
		_, body := get(t, c, base+"/")
		if xff := decodeHeaders(t, body).Get("X-Forwarded-For"); !strings.Contains(xff, "127.0.0.1") {
			t.Errorf("x-forwarded-for %q does not contain 127.0.0.1", xff)
		}
	})

	t.Run("x-forwarded-for appends the client address", func(t *testing.T) {
		_, body := get(t, c, base+"/", "X-Forwarded-For", "192.0.2.1")
		xff := decodeHeaders(t, body).Values("X-Forwarded-For")
		joined := strings.Join(xff, ", ")
		if !strings.HasPrefix(joined, "192.0.2.1") || !strings.HasSuffix(strings.TrimSpace(joined), "127.0.0.1") {
			t.Errorf("x-forwarded-for %q, want 192.0.2.1 followed by 127.0.0.1", joined)
		}
	})

	t.Run("x-forwarded-proto is http", func(t *testing.T) {
		_, body := get(t, c, base+"/")
		if got := decodeHeaders(t, body).Get("X-Forwarded-Proto"); got != "http" {
			t.Errorf("x-forwarded-proto %q, want http", got)
		}
	})

	t.Run("x-request-id generated as a UUID", func(t *testing.T) {
		_, b1 := get(t, c, base+"/")
		_, b2 := get(t, c, base+"/")
		id1, id2 := decodeHeaders(t, b1).Get("X-Request-Id"), decodeHeaders(t, b2).Get("X-Request-Id")
		if !uuidRE.MatchString(id1) || !uuidRE.MatchString(id2) {
			t.Errorf("x-request-id %q and %q, want UUIDs", id1, id2)
		}
		if id1 == id2 {
			t.Errorf("two requests got the same x-request-id %q", id1)
		}
	})

	t.Run("x-request-id kept when sent", func(t *testing.T) {
		_, body := get(t, c, base+"/", "X-Request-Id", "client-chosen-id-42")
		if got := decodeHeaders(t, body).Get("X-Request-Id"); got != "client-chosen-id-42" {
			t.Errorf("x-request-id %q, want the client's client-chosen-id-42", got)
		}
	})

	t.Run("hop-by-hop headers not forwarded", func(t *testing.T) {
		conn := dial(t, p.Addr("http"))
		fmt.Fprintf(conn, "GET /hop HTTP/1.1\r\nHost: e2e\r\nConnection: foo\r\nFoo: bar\r\n"+
			"Keep-Alive: timeout=5\r\nTE: deflate\r\nUpgrade: websocket\r\nProxy-Connection: keep-alive\r\n"+
			"X-End-To-End: kept\r\n\r\n")
		resp, body := readResponse(t, bufio.NewReader(conn), "GET")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d, body %q", resp.StatusCode, body)
		}
		h := decodeHeaders(t, body)
		for _, name := range []string{"Foo", "Keep-Alive", "Te", "Upgrade", "Proxy-Connection"} {
			if v, ok := h[name]; ok {
				t.Errorf("upstream saw hop-by-hop header %s: %q", name, v)
			}
		}
		if conn := h.Get("Connection"); strings.Contains(strings.ToLower(conn), "foo") {
			t.Errorf("upstream saw Connection %q, which names the client's hop-by-hop header", conn)
		}
		if got := h.Get("X-End-To-End"); got != "kept" {
			t.Errorf("end-to-end header X-End-To-End %q, want kept", got)
		}
	})
}

// TestInternalAndExternalClients checks Envoy's treatment of x-envoy-*
// request headers at the edge: a client in the internal ranges (127.0.0.1
// by default) keeps its x-envoy-* headers (less those the router consumes,
// overrides_test.go); an external one (with other
// ranges) loses the internal-only ones, whatever it sent. With
// mark_internal_requests the upstream gets x-envoy-internal or
// x-envoy-external-address, never the client's own copy.
func TestInternalAndExternalClients(t *testing.T) {
	up := testutil.Upstream(t, headerEcho())
	sent := []string{"X-Envoy-Internal", "true", "X-Envoy-Upstream-Alt-Stat-Name", "alt", "X-Envoy-Force-Trace", "1",
		"X-Envoy-External-Address", "192.0.2.9", "X-Envoy-Custom", "kept"}
	for _, tc := range []struct {
		name, hcm string
		want      map[string]string // "" means absent
	}{
		{"internal client", "", map[string]string{
			"X-Envoy-Internal": "", "X-Envoy-External-Address": "", "X-Envoy-Upstream-Alt-Stat-Name": "alt",
			"X-Envoy-Force-Trace": "1", "X-Envoy-Custom": "kept",
		}},
		{"internal client, marked", `mark_internal_requests = true`, map[string]string{
			"X-Envoy-Internal": "true", "X-Envoy-External-Address": "", "X-Envoy-Upstream-Alt-Stat-Name": "alt",
		}},
		{"external client", `internal_address_config = { cidr_ranges = [] }`, map[string]string{
			"X-Envoy-Internal": "", "X-Envoy-Upstream-Alt-Stat-Name": "", "X-Envoy-Force-Trace": "",
			"X-Envoy-External-Address": "", "X-Envoy-Custom": "kept",
		}},
		{"external client, marked", "internal_address_config = { cidr_ranges = [\"10.0.0.0/8\"] }\n    mark_internal_requests = true", map[string]string{
			"X-Envoy-Internal": "", "X-Envoy-Upstream-Alt-Stat-Name": "", "X-Envoy-External-Address": "127.0.0.1",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := strings.Replace(simpleConfig(1, up.Addr), `stat_prefix = "ingress_http"`, `stat_prefix = "ingress_http"`+"\n    "+tc.hcm, 1)
			p := gwtest.Start(t, cfg)
			_, body := get(t, newClient(nil), "http://"+p.Addr("http")+"/", sent...)
			seen := decodeHeaders(t, body)
			for name, want := range tc.want {
				if got := strings.Join(seen.Values(name), ","); got != want {
					t.Errorf("upstream saw %s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

// TestRequestIDOfEdgeRequests follows Envoy's x-request-id rules: an
// external client's id is replaced with a new one (unless
// preserve_external_request_id), an internal client's is kept, and with
// always_set_request_id_in_response every response carries the id the
// upstream saw, sluice's own replies included.
func TestRequestIDOfEdgeRequests(t *testing.T) {
	up := testutil.Upstream(t, headerEcho())
	for _, tc := range []struct {
		name string
		hcm  []string
		kept bool // the client's id reaches the upstream
	}{
		{"internal client", nil, true},
		{"external client", []string{`internal_address_config = { cidr_ranges = [] }`}, false},
		{"external client, preserved", []string{`internal_address_config = { cidr_ranges = [] }`, `preserve_external_request_id = true`}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hcm := append([]string{`always_set_request_id_in_response = true`}, tc.hcm...)
			p := gwtest.Start(t, withHCM(config(1, route(`prefix = "/up"`, "up"), cluster("up", up.Addr)), hcm...))
			resp, body := get(t, newClient(nil), "http://"+p.Addr("http")+"/up", "X-Request-Id", "client-chosen")
			seen := decodeHeaders(t, body).Get("X-Request-Id")
			if (seen == "client-chosen") != tc.kept || seen == "" {
				t.Errorf("upstream saw x-request-id %q; client's kept: %v", seen, tc.kept)
			}
			if got := resp.Header.Get("X-Request-Id"); got != seen {
				t.Errorf("response x-request-id %q, want the upstream's %q", got, seen)
			}
			// sluice's own reply (no route: 404) carries the id too.
			resp, _ = get(t, newClient(nil), "http://"+p.Addr("http")+"/none", "X-Request-Id", "client-chosen")
			if got := resp.Header.Get("X-Request-Id"); resp.StatusCode != 404 || got == "" || (got == "client-chosen") != tc.kept {
				t.Errorf("local reply: %d with x-request-id %q; client's kept: %v", resp.StatusCode, got, tc.kept)
			}
		})
	}
}
