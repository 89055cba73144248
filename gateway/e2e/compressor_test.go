package e2e

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// compressorFilter compresses at best_speed, before the router.
const compressorFilter = `
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.compressor"
      [listener.filter_chain.filter.config.http_filter.config]
      compression_level = "best_speed"
`

// page is a compressible body: 8 KiB of repeated HTML.
var page = strings.Repeat("<p>sluice compresses what the client accepts</p>\n", 170)

// TestCompressorGzipsWhatTheClientAccepts checks the compressor against a
// real upstream over HTTP/1.1 and HTTP/2: a listed content type is gzipped
// for a client that accepts gzip (Content-Length dropped, Vary added, a
// strong ETag made weak) and left alone for one that does not, for other
// types, short bodies, no-transform and bodies already encoded; a streamed
// body's first part reaches the client before the upstream sends the rest;
// trailers follow the end of the gzip stream; the counters say so.
func TestCompressorGzipsWhatTheClientAccepts(t *testing.T) {
	release := make(chan struct{})
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		switch r.URL.Path {
		case "/page":
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("ETag", `"v1"`)
			h.Set("Content-Length", fmt.Sprint(len(page)))
			io.WriteString(w, page)
		case "/image":
			h.Set("Content-Type", "image/png")
			io.WriteString(w, page)
		case "/short":
			h.Set("Content-Type", "text/plain")
			io.WriteString(w, "tiny")
		case "/no-transform":
			h.Set("Content-Type", "text/plain")
			h.Set("Cache-Control", "public, no-transform")
			io.WriteString(w, page)
		case "/encoded":
			h.Set("Content-Type", "text/plain")
			h.Set("Content-Encoding", "br")
			io.WriteString(w, page)
		case "/stream":
			h.Set("Content-Type", "text/plain")
			io.WriteString(w, "first part\n")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
			io.WriteString(w, "second part\n")
		case "/trailers":
			h.Set("Content-Type", "application/json")
			h.Set("Trailer", "X-Checksum")
			io.WriteString(w, page)
			h.Set("X-Checksum", "42")
		}
	}))
	p := gwtest.Start(t, withHTTPFilter(simpleConfig(1, up.Addr), compressorFilter)+"\n[admin]\naddress = \"127.0.0.1:0\"\n")
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	base := "http://" + p.Addr("http")
	h2t := h2cTransport(nil)
	h2t.DisableCompression = true // the test reads the encoded bytes
	rawH2c := &http.Client{Timeout: ioTimeout, Transport: h2t}

	for _, client := range []struct {
		name string
		c    *http.Client
	}{{"http1", newClient(nil)}, {"h2c", rawH2c}} {
		c := client.c
		// fetch sends a GET with the given Accept-Encoding (none if "")
		// and returns the response with its raw (still encoded) body.
		fetch := func(t *testing.T, path, accept string) (*http.Response, []byte) {
			t.Helper()
			req, _ := http.NewRequest("GET", base+path, nil)
			if accept != "" {
				req.Header.Set("Accept-Encoding", accept)
			}
			return do(t, c, req)
		}
		gunzip := func(t *testing.T, b []byte) string {
			t.Helper()
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("body is not gzip: %v", err)
			}
			out, err := io.ReadAll(zr)
			if err != nil {
				t.Fatalf("gzip body: %v", err)
			}
			return string(out)
		}
		t.Run(client.name, func(t *testing.T) {
			t.Run("compressed", func(t *testing.T) {
				resp, body := fetch(t, "/page", "br;q=1.0, gzip;q=0.8, *;q=0.1")
				if resp.Header.Get("Content-Encoding") != "gzip" {
					t.Fatalf("content-encoding %q, want gzip", resp.Header.Get("Content-Encoding"))
				}
				if got := gunzip(t, body); got != page {
					t.Errorf("gunzipped body differs from the upstream's (%d bytes, want %d)", len(got), len(page))
				}
				if len(body) >= len(page)/4 {
					t.Errorf("compressed body is %d bytes for %d of repetitive HTML", len(body), len(page))
				}
				if cl := resp.Header.Get("Content-Length"); cl != "" && cl != fmt.Sprint(len(body)) {
					t.Errorf("content-length %s, but the compressed body is %d bytes", cl, len(body))
				}
				if v := resp.Header.Values("Vary"); !containsFold(v, "accept-encoding") {
					t.Errorf("vary %q, want accept-encoding", v)
				}
				if e := resp.Header.Get("ETag"); e != `W/"v1"` {
					t.Errorf("etag %q, want the upstream's made weak, W/\"v1\"", e)
				}
			})
			t.Run("not accepted", func(t *testing.T) {
				for _, accept := range []string{"", "identity", "gzip;q=0", "br", "gzip;q=0.5, identity"} {
					resp, body := fetch(t, "/page", accept)
					if resp.Header.Get("Content-Encoding") != "" || string(body) != page {
						t.Errorf("Accept-Encoding %q: content-encoding %q, %d body bytes; want the page as is", accept, resp.Header.Get("Content-Encoding"), len(body))
					}
					if v := resp.Header.Values("Vary"); !containsFold(v, "accept-encoding") {
						t.Errorf("Accept-Encoding %q: vary %q, want accept-encoding on an uncompressed variant too", accept, v)
					}
				}
			})
			t.Run("wildcard", func(t *testing.T) {
				resp, body := fetch(t, "/page", "*")
				if resp.Header.Get("Content-Encoding") != "gzip" || gunzip(t, body) != page {
					t.Errorf("Accept-Encoding *: content-encoding %q; want gzip", resp.Header.Get("Content-Encoding"))
				}
			})
			for _, path := range []string{"/image", "/short", "/no-transform", "/encoded"} {
				t.Run("left alone "+path, func(t *testing.T) {
					resp, body := fetch(t, path, "gzip")
					want := map[string]string{"/image": "", "/short": "", "/no-transform": "", "/encoded": "br"}[path]
					if got := resp.Header.Get("Content-Encoding"); got != want {
						t.Errorf("content-encoding %q, want %q", got, want)
					}
					if path != "/short" && string(body) != page {
						t.Errorf("body changed (%d bytes)", len(body))
					}
				})
			}
			t.Run("streamed body is flushed", func(t *testing.T) {
				req, _ := http.NewRequest("GET", base+"/stream", nil)
				req.Header.Set("Accept-Encoding", "gzip")
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if resp.Header.Get("Content-Encoding") != "gzip" {
					t.Fatalf("content-encoding %q, want gzip", resp.Header.Get("Content-Encoding"))
				}
				// The upstream holds its second part until release; the
				// first must arrive before that (the client's timeout
				// bounds the read).
				zr, err := gzip.NewReader(resp.Body)
				if err != nil {
					t.Fatalf("gzip header: %v", err)
				}
				first := make([]byte, len("first part\n"))
				if _, err := io.ReadFull(zr, first); err != nil || string(first) != "first part\n" {
					t.Fatalf("first part %q, %v: the compressor held the bytes the upstream flushed", first, err)
				}
				select {
				case release <- struct{}{}:
				case <-time.After(ioTimeout):
					t.Fatal("the upstream handler is not waiting to send the second part")
				}
				rest, err := io.ReadAll(zr)
				if err != nil || string(rest) != "second part\n" {
					t.Errorf("rest %q, %v; want the second part", rest, err)
				}
			})
			t.Run("trailers after the gzip stream", func(t *testing.T) {
				req, _ := http.NewRequest("GET", base+"/trailers", nil)
				req.Header.Set("Accept-Encoding", "gzip")
				resp, body := do(t, c, req)
				if resp.Header.Get("Content-Encoding") != "gzip" || gunzip(t, body) != page {
					t.Fatalf("content-encoding %q: want a gzipped page", resp.Header.Get("Content-Encoding"))
				}
				if got := resp.Trailer.Get("X-Checksum"); got != "42" {
					t.Errorf("trailer x-checksum %q, want 42", got)
				}
			})
		})
	}
	st := adminCounters(t, admin)
	for name, min := range map[string]float64{
		"compressed": 8, "not_compressed": 8, "no_accept_header": 2, "header_identity": 8, "header_gzip": 6,
		"header_wildcard": 2, "content_length_too_small": 0, "total_uncompressed_bytes": float64(6 * len(page)),
	} {
		full := "http.ingress_http.compressor.gzip.gzip." + name
		if got, ok := st[full]; !ok || got < min {
			t.Errorf("%s = %v (present %v), want at least %v", full, got, ok, min)
		}
	}
	if in, out := st["http.ingress_http.compressor.gzip.gzip.total_uncompressed_bytes"], st["http.ingress_http.compressor.gzip.gzip.total_compressed_bytes"]; out <= 0 || out >= in/4 {
		t.Errorf("total_compressed_bytes %v for total_uncompressed_bytes %v", out, in)
	}
}

func containsFold(list []string, token string) bool {
	for _, v := range list {
		for _, e := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(e), token) {
				return true
			}
		}
	}
	return false
}
