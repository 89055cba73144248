package e2e

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// threeCompressors is a chain of brotli, gzip and zstd compressors, in that
// order, before the router.
const threeCompressors = `
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.compressor"
      [listener.filter_chain.filter.config.http_filter.config]
      library = "brotli"
      brotli = { quality = 4, window_bits = 20 }
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.compressor"
      [listener.filter_chain.filter.config.http_filter.config]
      compression_level = "best_speed"
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.compressor"
      [listener.filter_chain.filter.config.http_filter.config]
      library = "zstd"
      zstd = { compression_level = 3 }
`

// decode returns the body decoded from content-coding coding ("" for none).
func decode(t *testing.T, coding string, r io.Reader) io.Reader {
	t.Helper()
	switch coding {
	case "":
		return r
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("body is not gzip: %v", err)
		}
		return zr
	case "br":
		return brotli.NewReader(r)
	case "zstd":
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(zr.Close)
		return zr
	}
	t.Fatalf("unexpected content-encoding %q", coding)
	return nil
}

// TestCompressorChoosesTheClientsPreferredLibrary runs a chain of brotli,
// gzip and zstd compressors against a real upstream over HTTP/1.1 and h2c:
// exactly one compresses each response, the one whose coding the client
// prefers (chain order on a tie, through "*" the first), none for identity
// or no Accept-Encoding; the bodies decode to the upstream's; trailers
// follow the end of a brotli or zstd stream; a streamed response through
// brotli reaches the client before the upstream ends; the
// counters of each library say which was used and which overshadowed.
func TestCompressorChoosesTheClientsPreferredLibrary(t *testing.T) {
	release := make(chan struct{})
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		switch r.URL.Path {
		case "/page":
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("ETag", `"v1"`)
			h.Set("Content-Length", fmt.Sprint(len(page)))
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
	p := gwtest.Start(t, withHTTPFilter(simpleConfig(1, up.Addr), threeCompressors)+"\n[admin]\naddress = \"127.0.0.1:0\"\n")
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	base := "http://" + p.Addr("http")
	h2t := h2cTransport(nil)
	h2t.DisableCompression = true // the test reads the encoded bytes
	rawH2c := &http.Client{Timeout: ioTimeout, Transport: h2t}

	cases := []struct{ accept, want string }{
		{"br", "br"},
		{"gzip;q=1, br;q=0.5", "gzip"},
		{"zstd", "zstd"},
		{"*", "br"},
		{"gzip, zstd", "gzip"},
		{"br;q=abc, zstd;q=0.5", "zstd"}, // a malformed element does not void the others
		{"identity", ""},
		{"", ""},
	}
	for _, client := range []struct {
		name string
		c    *http.Client
	}{{"http1", newClient(nil)}, {"h2c", rawH2c}} {
		c := client.c
		t.Run(client.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run("accept "+tc.accept, func(t *testing.T) {
					req, _ := http.NewRequest("GET", base+"/page", nil)
					if tc.accept != "" {
						req.Header.Set("Accept-Encoding", tc.accept)
					}
					resp, body := do(t, c, req)
					if got := resp.Header.Values("Content-Encoding"); len(got) > 1 || resp.Header.Get("Content-Encoding") != tc.want {
						t.Fatalf("content-encoding %q, want %q", got, tc.want)
					}
					out, err := io.ReadAll(decode(t, tc.want, bytes.NewReader(body)))
					if err != nil || string(out) != page {
						t.Fatalf("decoded body: %d bytes, %v; want the upstream's %d", len(out), err, len(page))
					}
					if v := resp.Header.Values("Vary"); !containsFold(v, "accept-encoding") || len(v) != 1 {
						t.Errorf("vary %q, want accept-encoding once", v)
					}
					wantETag := `"v1"`
					if tc.want != "" {
						wantETag = `W/"v1"`
						if len(body) >= len(page)/4 {
							t.Errorf("compressed body is %d bytes for %d of repetitive HTML", len(body), len(page))
						}
					}
					if e := resp.Header.Get("ETag"); e != wantETag {
						t.Errorf("etag %q, want %q", e, wantETag)
					}
				})
			}
			for _, coding := range []string{"br", "zstd"} {
				t.Run("trailers after the "+coding+" stream", func(t *testing.T) {
					req, _ := http.NewRequest("GET", base+"/trailers", nil)
					req.Header.Set("Accept-Encoding", coding)
					resp, body := do(t, c, req)
					if resp.Header.Get("Content-Encoding") != coding {
						t.Fatalf("content-encoding %q, want %s", resp.Header.Get("Content-Encoding"), coding)
					}
					if out, err := io.ReadAll(decode(t, coding, bytes.NewReader(body))); err != nil || string(out) != page {
						t.Errorf("decoded body: %d bytes, %v; want the upstream's %d", len(out), err, len(page))
					}
					if got := resp.Trailer.Get("X-Checksum"); got != "42" {
						t.Errorf("trailer x-checksum %q, want 42", got)
					}
				})
			}
			t.Run("streamed body through brotli is flushed", func(t *testing.T) {
				req, _ := http.NewRequest("GET", base+"/stream", nil)
				req.Header.Set("Accept-Encoding", "br, gzip;q=0.5")
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if resp.Header.Get("Content-Encoding") != "br" {
					t.Fatalf("content-encoding %q, want br", resp.Header.Get("Content-Encoding"))
				}
				// The upstream holds its second part until release; the
				// first must arrive before that (the client's timeout
				// bounds the read).
				br := brotli.NewReader(resp.Body)
				first := make([]byte, len("first part\n"))
				if _, err := io.ReadFull(br, first); err != nil || string(first) != "first part\n" {
					t.Fatalf("first part %q, %v: the compressor held the bytes the upstream flushed", first, err)
				}
				select {
				case release <- struct{}{}:
				case <-time.After(ioTimeout):
					t.Fatal("the upstream handler is not waiting to send the second part")
				}
				rest, err := io.ReadAll(br)
				if err != nil || string(rest) != "second part\n" {
					t.Errorf("rest %q, %v; want the second part", rest, err)
				}
			})
		})
	}
	// Per client: br, gzip;q=1 br;q=0.5, zstd, *, "gzip, zstd",
	// "br;q=abc, zstd;q=0.5", identity, none, br and zstd with trailers, and the brotli stream. Responses run through the
	// compressors in reverse: one the chosen compressor has encoded is
	// left alone, uncounted, by those before it in the chain, so brotli
	// never counts header_compressor_overshadowed here, and gzip only when
	// brotli is chosen.
	st := adminCounters(t, admin)
	for name, want := range map[string]float64{
		"brotli.brotli.compressed": 8, "brotli.brotli.header_compressor_used": 6, "brotli.brotli.header_wildcard": 2,
		"brotli.brotli.header_compressor_overshadowed": 0, "brotli.brotli.header_identity": 2, "brotli.brotli.no_accept_header": 2,
		"gzip.gzip.compressed": 4, "gzip.gzip.header_compressor_used": 4, "gzip.gzip.header_gzip": 4,
		"gzip.gzip.header_compressor_overshadowed": 8, "gzip.gzip.not_compressed": 12,
		"zstd.zstd.compressed": 6, "zstd.zstd.header_compressor_used": 6, "zstd.zstd.header_compressor_overshadowed": 12,
	} {
		full := "http.ingress_http.compressor." + name
		if got, ok := st[full]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", full, got, ok, want)
		}
	}
	for _, lib := range []string{"brotli.brotli", "gzip.gzip", "zstd.zstd"} {
		in, out := st["http.ingress_http.compressor."+lib+".total_uncompressed_bytes"], st["http.ingress_http.compressor."+lib+".total_compressed_bytes"]
		if in <= 0 || out <= 0 || out >= in/4 {
			t.Errorf("%s: total_compressed_bytes %v for total_uncompressed_bytes %v", lib, out, in)
		}
	}
}

// TestCompressorConfigErrorsNameFileLineAndKey checks that `sluice
// validate` rejects bad compressor libraries with the file, line and key.
func TestCompressorConfigErrorsNameFileLineAndKey(t *testing.T) {
	dir := t.TempDir()
	for i, tc := range []struct {
		name, filters, line, key string
	}{
		{
			name:    "brotli quality",
			filters: strings.Replace(threeCompressors, "quality = 4", "quality = 12", 1),
			line:    "quality = 12",
			key:     `http_filter\[0\]\.config\.brotli\.quality: must be 0 … 11`,
		},
		{
			name:    "zstd level for gzip",
			filters: strings.Replace(threeCompressors, `compression_level = "best_speed"`, "zstd = { compression_level = 3 } # on gzip", 1),
			line:    "# on gzip",
			key:     `http_filter\[1\]\.config\.zstd: is for library "zstd" only`,
		},
		{
			name:    "unknown library",
			filters: strings.Replace(threeCompressors, `library = "zstd"`, `library = "deflate"`, 1),
			line:    `library = "deflate"`,
			key:     `http_filter\[2\]\.config\.library: must be gzip, brotli or zstd`,
		},
		{
			name:    "two compressors sharing stats",
			filters: strings.Replace(threeCompressors, "library = \"zstd\"\n      zstd = { compression_level = 3 }", "library = \"brotli\"\n      name = \"brotli\" # again", 1),
			line:    `name = "brotli" # again`,
			key:     `http_filter\[2\]\.config\.name: another brotli compressor of this chain is named "brotli"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := withHTTPFilter(simpleConfig(1, "127.0.0.1:1"), tc.filters)
			path := filepath.Join(dir, fmt.Sprintf("bad%d.toml", i))
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out := gwtest.Exec(t, 30*time.Second, "validate", "-c", path)
			if code != 1 {
				t.Errorf("validate exit code %d, want 1; output:\n%s", code, out)
			}
			if want := fmt.Sprintf("%s:%d:", path, lineOf(t, text, tc.line)); !strings.Contains(out, want) {
				t.Errorf("validate output does not name %q; output:\n%s", want, out)
			}
			if !regexp.MustCompile(tc.key).MatchString(out) {
				t.Errorf("validate output does not name the key path /%s/; output:\n%s", tc.key, out)
			}
		})
	}
}
