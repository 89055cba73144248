package e2e

import (
	"bytes"
	"compress/gzip"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// decompressorFilter decompresses gzip both ways, with Envoy's default
// max_inflate_ratio of 100.
const decompressorFilter = `
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.decompressor"
      [listener.filter_chain.filter.config.http_filter.config]
      decompressor_library = { name = "basic", library = "gzip" }
`

func gzipped(p []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(p)
	w.Close()
	return b.Bytes()
}

// plainText is 200 KB of text that compresses about 3:1.
func plainText() []byte {
	r := rand.New(rand.NewPCG(3, 4))
	var b []byte
	for len(b) < 200_000 {
		b = strconv.AppendInt(append(b, "word "[r.IntN(5):]...), int64(r.IntN(100000)), 36)
	}
	return b
}

// TestDecompressorGzipBothWays checks the decompressor against a real
// upstream, over HTTP/1.1 and HTTP/2: a gzip request body reaches the
// upstream decompressed (no Content-Encoding, no Content-Length), and
// the upstream is told that gzip is accepted; a gzip response reaches the
// client decompressed; a gzip bomb is stopped having let through at most
// max_inflate_ratio times its compressed size (413 for a request, a reset
// response for a response); a corrupt stream gets 400 (request) or a
// reset (response); the counters say so.
func TestDecompressorGzipBothWays(t *testing.T) {
	plain := plainText()
	gz := gzipped(plain)
	bomb := gzipped(make([]byte, 64<<20)) // about 64 KiB
	corrupt := append([]byte(nil), gz...)
	for i := 100; i < 200; i++ {
		corrupt[i] ^= 0x5a
	}
	var upBytes atomic.Int64 // request body bytes the upstream read, last request
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			body, err := io.ReadAll(r.Body)
			upBytes.Store(int64(len(body)))
			if err != nil {
				return
			}
			h := w.Header()
			h.Set("X-Got-CE", r.Header.Get("Content-Encoding"))
			h.Set("X-Got-CL", strconv.FormatInt(r.ContentLength, 10))
			h.Set("X-Got-AE", r.Header.Get("Accept-Encoding"))
			w.Write(body)
		case "/gz", "/bomb", "/corrupt":
			b := map[string][]byte{"/gz": gz, "/bomb": bomb, "/corrupt": corrupt}[r.URL.Path]
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.Write(b)
		}
	}))
	p := gwtest.Start(t, withHTTPFilter(simpleConfig(1, up.Addr), decompressorFilter)+"\n[admin]\naddress = \"127.0.0.1:0\"\n")
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	base := "http://" + p.Addr("http")
	h2t := h2cTransport(nil)
	h2t.DisableCompression = true
	clients := []struct {
		name string
		c    *http.Client
	}{{"HTTP/1.1", newClient(nil)}, {"HTTP/2", &http.Client{Timeout: ioTimeout, Transport: h2t}}}
	post := func(c *http.Client, body []byte) (*http.Response, []byte, error) {
		req, _ := http.NewRequest("POST", base+"/echo", bytes.NewReader(body))
		req.Header.Set("Content-Encoding", "gzip")
		req.Header.Set("Accept-Encoding", "br;q=0.5")
		resp, err := c.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			t.Run("request body", func(t *testing.T) {
				resp, body, err := post(cl.c, gz)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(body, plain) {
					t.Errorf("upstream got %d bytes, want the %d decompressed ones", len(body), len(plain))
				}
				if ce, cl := resp.Header.Get("X-Got-CE"), resp.Header.Get("X-Got-CL"); ce != "" || cl != "-1" {
					t.Errorf("upstream saw content-encoding %q, content-length %s; want neither", ce, cl)
				}
				if ae := resp.Header.Get("X-Got-AE"); ae != "br;q=0.5,gzip" {
					t.Errorf("upstream saw accept-encoding %q, want gzip advertised after the client's", ae)
				}
			})
			t.Run("response body", func(t *testing.T) {
				resp, body := get(t, cl.c, base+"/gz")
				if !bytes.Equal(body, plain) || resp.Header.Get("Content-Encoding") != "" {
					t.Errorf("got %d bytes with content-encoding %q, want the %d decompressed ones", len(body), resp.Header.Get("Content-Encoding"), len(plain))
				}
			})
			t.Run("request bomb", func(t *testing.T) {
				upBytes.Store(-1)
				resp, body, err := post(cl.c, bomb)
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != 413 {
					t.Errorf("status %d %q, want 413", resp.StatusCode, body)
				}
				if n := upBytes.Load(); n > int64(100*len(bomb)) {
					t.Errorf("the upstream read %d bytes of a %d-byte bomb", n, len(bomb))
				}
			})
			t.Run("response bomb", func(t *testing.T) {
				if n, what := failingGet(t, cl.c, base+"/bomb"); n > int64(100*len(bomb)) || what == "" {
					t.Errorf("read %d bytes, %q; want a 502 or a reset after at most %d", n, what, 100*len(bomb))
				}
			})
			t.Run("corrupt request", func(t *testing.T) {
				resp, body, err := post(cl.c, corrupt)
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != 400 {
					t.Errorf("status %d %q, want 400", resp.StatusCode, body)
				}
			})
			t.Run("corrupt response", func(t *testing.T) {
				if n, what := failingGet(t, cl.c, base+"/corrupt"); what == "" {
					t.Errorf("read %d bytes without error; want a 502 or a reset", n)
				}
			})
		})
	}
	st := adminCounters(t, admin)
	s := "http.ingress_http.decompressor.basic.gzip."
	for name, want := range map[string]float64{
		"request.decompressed": 6, "response.decompressed": 6,
		"decompressor_library.inflate_ratio_exceeded": 4, "decompressor_library.decompression_error": 4,
	} {
		if got := st[s+name]; got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := st[s+"request.total_uncompressed_bytes"]; got < float64(2*len(plain)) {
		t.Errorf("request.total_uncompressed_bytes = %v, want at least %d", got, 2*len(plain))
	}
}

// failingGet GETs url and says how the response failed: "502" when sluice
// answered 502, "reset: ..." when the response broke off, "" when it did
// not fail; n is the body bytes read.
func failingGet(t *testing.T, c *http.Client, url string) (n int64, what string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return 0, "reset: " + err.Error()
	}
	defer resp.Body.Close()
	n, err = io.Copy(io.Discard, resp.Body)
	switch {
	case resp.StatusCode == 502 && err == nil:
		return n, "502"
	case err != nil:
		return n, "reset: " + err.Error()
	}
	return n, ""
}
