package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// Tests of sluice.filters.http.cache: an origin that counts the requests
// of each path, behind a one-worker sluice with the cache filter.

// cacheFilter is the cache filter's http_filter table with the given
// sizes.
func cacheFilter(maxSize, maxBody int) string {
	return fmt.Sprintf(`
      [[listener.filter_chain.filter.config.http_filter]]
      name = "sluice.filters.http.cache"
      [listener.filter_chain.filter.config.http_filter.config]
      max_size_bytes = %d
      max_body_bytes = %d
      allowed_vary_headers = ["accept-language"]`, maxSize, maxBody)
}

// cacheOrigin is the upstream of the cache tests. Its responses by path:
//
//	/fresh*   max-age=60, ETag "f", a Last-Modified; POST answers 200 on
//	          /fresh, 500 on /fresh-fail
//	/reval    max-age=0 and ETag "v<version>"; 304 to a matching
//	          If-None-Match
//	/must     no-cache and ETag "m"; 304 to If-None-Match "m"
//	/vary     Vary: Accept-Language; /vary-ua Vary: User-Agent
//	/nostore  no-store; /private private; /public public (all max-age=60)
//	/expires  Expires a minute after Date, no Cache-Control
//	/mid      max-age=60, midBody
//	/big      max-age=60, a body of bigBody bytes
//	/lru/*    max-age=60, a body of 4 KiB
//	/stream   max-age=60: "part1", then, once release is closed, "part2"
//	/trunc    max-age=60, Content-Length 100, 10 bytes, then the
//	          connection closes
type cacheOrigin struct {
	mu      sync.Mutex
	counts  map[string]int
	inm     map[string]string // the last If-None-Match by path
	version atomic.Int32
	release chan struct{}
}

const bigBody = 64 << 10

// midBody is a 40 KiB body that is not one byte repeated, so that pieces
// out of order would show.
func midBody() []byte {
	var b []byte
	for i := 0; len(b) < 40<<10; i++ {
		b = fmt.Appendf(b, "%08d|", i)
	}
	return b[:40<<10]
}

func (o *cacheOrigin) count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.counts[path]
}

func (o *cacheOrigin) lastINM(path string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.inm[path]
}

func (o *cacheOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.counts[r.URL.Path]++
	n := o.counts[r.URL.Path]
	o.inm[r.URL.Path] = r.Header.Get("If-None-Match")
	o.mu.Unlock()
	h := w.Header()
	p := r.URL.Path
	if r.Method == "POST" {
		if p == "/fresh-fail" {
			w.WriteHeader(500)
		}
		fmt.Fprint(w, "posted")
		return
	}
	switch {
	case strings.HasPrefix(p, "/fresh"):
		h.Set("Cache-Control", "max-age=60")
		h.Set("ETag", `"f"`)
		h.Set("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT")
	case p == "/reval":
		tag := fmt.Sprintf(`"v%d"`, o.version.Load())
		h.Set("Cache-Control", "max-age=0")
		h.Set("ETag", tag)
		if r.Header.Get("If-None-Match") == tag {
			h.Set("X-Validated", fmt.Sprint(n))
			w.WriteHeader(304)
			return
		}
	case p == "/must":
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", `"m"`)
		if r.Header.Get("If-None-Match") == `"m"` {
			w.WriteHeader(304)
			return
		}
	case p == "/vary":
		h.Set("Cache-Control", "max-age=60")
		h.Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "%s %d", r.Header.Get("Accept-Language"), n)
		return
	case p == "/vary-ua":
		h.Set("Cache-Control", "max-age=60")
		h.Set("Vary", "User-Agent")
	case p == "/nostore":
		h.Set("Cache-Control", "no-store, max-age=60")
	case p == "/private":
		h.Set("Cache-Control", "private, max-age=60")
	case p == "/public":
		h.Set("Cache-Control", "public, max-age=60")
	case p == "/expires":
		now := time.Now().UTC()
		h.Set("Date", now.Format(http.TimeFormat))
		h.Set("Expires", now.Add(time.Minute).Format(http.TimeFormat))
	case p == "/mid":
		h.Set("Cache-Control", "max-age=60")
		w.Write(midBody())
		return
	case p == "/big":
		h.Set("Cache-Control", "max-age=60")
		w.Write([]byte(strings.Repeat("b", bigBody)))
		return
	case strings.HasPrefix(p, "/lru/"):
		h.Set("Cache-Control", "max-age=60")
		w.Write([]byte(strings.Repeat("l", 4<<10)))
		return
	case p == "/stream":
		h.Set("Cache-Control", "max-age=60")
		h.Set("Content-Length", "10")
		w.Write([]byte("part1"))
		w.(http.Flusher).Flush()
		select {
		case <-o.release:
		case <-time.After(ioTimeout):
		}
		w.Write([]byte("part2"))
		return
	case p == "/trunc":
		h.Set("Cache-Control", "max-age=60")
		h.Set("Content-Length", "100")
		w.WriteHeader(200)
		w.Write([]byte("0123456789"))
		w.(http.Flusher).Flush()
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
		return
	}
	fmt.Fprintf(w, "%s %d", p, n)
}

// startCache runs an origin and a one-worker sluice with the cache
// filter (and an admin API) in front of it; routes under /nocache disable
// the filter per route.
func startCache(t *testing.T, maxSize, maxBody int) (*cacheOrigin, *testutil.Server, *gwtest.Proxy, string) {
	t.Helper()
	o := &cacheOrigin{counts: map[string]int{}, inm: map[string]string{}, release: make(chan struct{})}
	up := testutil.Upstream(t, o)
	routes := route(`prefix = "/nocache"`, "up") + perFilter("route", "sluice.filters.http.cache", "disabled = true") +
		route(`prefix = "/"`, "up")
	p := gwtest.Start(t, withHTTPFilter(config(1, routes, cluster("up", up.Addr)), cacheFilter(maxSize, maxBody))+
		"\n[admin]\naddress = \"127.0.0.1:0\"\n")
	return o, up, p, "http://" + p.Addr("http")
}

// TestCacheServesHitsWithoutTheUpstream: the second GET of a max-age=60
// response (over HTTP/1.1 and HTTP/2) is answered from the cache with an
// Age field and the upstream is not asked again; a HEAD is answered from
// the GET's entry; a 40 KiB body comes back whole and in order; an
// Expires-only response is stored too; the stats count
// the hits, misses and insertions.
func TestCacheServesHitsWithoutTheUpstream(t *testing.T) {
	o, _, p, base := startCache(t, 1<<20, 64<<10)
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	resp, body := get(t, newClient(nil), base+"/fresh")
	if resp.StatusCode != 200 || string(body) != "/fresh 1" || resp.Header.Get("Age") != "" {
		t.Fatalf("first GET: %d %q age %q", resp.StatusCode, body, resp.Header.Get("Age"))
	}
	for _, c := range []struct {
		name string
		c    *http.Client
	}{{"http1", newClient(nil)}, {"h2c", h2cClient(nil)}} {
		resp, body := get(t, c.c, base+"/fresh")
		if resp.StatusCode != 200 || string(body) != "/fresh 1" {
			t.Errorf("%s: second GET: %d %q, want the stored /fresh 1", c.name, resp.StatusCode, body)
		}
		if resp.Header.Get("Age") == "" || resp.Header.Get("Etag") != `"f"` || resp.Header.Get("Cache-Control") != "max-age=60" {
			t.Errorf("%s: hit headers %v, want age, etag and cache-control", c.name, resp.Header)
		}
	}
	for _, c := range []*http.Client{newClient(nil), h2cClient(nil)} {
		req, _ := http.NewRequest("HEAD", base+"/fresh", nil)
		resp, body := do(t, c, req)
		if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len("/fresh 1")) || resp.Header.Get("Age") == "" {
			t.Errorf("HEAD %s: %d body %q content-length %d age %q", resp.Proto, resp.StatusCode, body, resp.ContentLength, resp.Header.Get("Age"))
		}
	}
	if n := o.count("/fresh"); n != 1 {
		t.Errorf("the upstream saw /fresh %d times, want 1", n)
	}
	get(t, newClient(nil), base+"/mid")
	for _, c := range []*http.Client{newClient(nil), h2cClient(nil)} {
		if _, body := get(t, c, base+"/mid"); string(body) != string(midBody()) || o.count("/mid") != 1 {
			t.Errorf("40 KiB body from the cache: %d bytes (equal: %v), upstream saw %d", len(body), string(body) == string(midBody()), o.count("/mid"))
		}
	}
	get(t, newClient(nil), base+"/expires")
	if _, body := get(t, newClient(nil), base+"/expires"); string(body) != "/expires 1" || o.count("/expires") != 1 {
		t.Errorf("Expires response: second GET %q, upstream saw %d", body, o.count("/expires"))
	}
	waitCounter(t, admin, "http.ingress_http.cache.hits", 7)
	c := adminCounters(t, admin)
	if c["http.ingress_http.cache.misses"] != 3 || c["http.ingress_http.cache.insertions"] != 3 || c["http.ingress_http.cache.entries"] != 3 {
		t.Errorf("misses %v insertions %v entries %v, want 3, 3, 3", c["http.ingress_http.cache.misses"],
			c["http.ingress_http.cache.insertions"], c["http.ingress_http.cache.entries"])
	}
}

// TestCacheAnswersConditionalRequestsWith304: a client's If-None-Match
// or If-Modified-Since that matches a fresh entry gets 304 from the cache;
// one that does not match gets the stored 200.
func TestCacheAnswersConditionalRequestsWith304(t *testing.T) {
	o, _, _, base := startCache(t, 1<<20, 64<<10)
	get(t, newClient(nil), base+"/fresh")
	for _, tc := range []struct {
		hdr, val string
		want     int
	}{
		{"If-None-Match", `"f"`, 304},
		{"If-None-Match", `W/"x", W/"f"`, 304},
		{"If-None-Match", `"other"`, 200},
		{"If-Modified-Since", "Mon, 07 Nov 1994 08:49:37 GMT", 304},
		{"If-Modified-Since", "Sat, 05 Nov 1994 08:49:37 GMT", 200},
	} {
		for _, c := range []struct {
			name string
			c    *http.Client
		}{{"http1", newClient(nil)}, {"h2c", h2cClient(nil)}} {
			resp, body := get(t, c.c, base+"/fresh", tc.hdr, tc.val)
			if resp.StatusCode != tc.want {
				t.Errorf("%s: %s: %s: %d, want %d", c.name, tc.hdr, tc.val, resp.StatusCode, tc.want)
			}
			if tc.want == 304 && (len(body) != 0 || resp.Header.Get("Etag") != `"f"`) {
				t.Errorf("%s: 304 with body %q etag %q", c.name, body, resp.Header.Get("Etag"))
			}
			if tc.want == 200 && string(body) != "/fresh 1" {
				t.Errorf("%s: unmatched condition: body %q, want the stored one", c.name, body)
			}
		}
	}
	if n := o.count("/fresh"); n != 1 {
		t.Errorf("the upstream saw /fresh %d times, want 1", n)
	}
}

// TestCacheRevalidatesStaleEntries: a max-age=0 response with an ETag is
// stored; the next GET goes upstream with If-None-Match, and the upstream's
// 304 makes the cache send its stored body (over HTTP/1.1 and HTTP/2); a
// new ETag gets a 200 that replaces the entry. A no-cache response is
// revalidated on each use, and a request's no-cache revalidates a fresh
// entry.
func TestCacheRevalidatesStaleEntries(t *testing.T) {
	o, _, p, base := startCache(t, 1<<20, 64<<10)
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	if _, body := get(t, newClient(nil), base+"/reval"); string(body) != "/reval 1" {
		t.Fatalf("first GET: %q", body)
	}
	for i, c := range []struct {
		name string
		c    *http.Client
	}{{"http1", newClient(nil)}, {"h2c", h2cClient(nil)}} {
		resp, body := get(t, c.c, base+"/reval")
		if resp.StatusCode != 200 || string(body) != "/reval 1" {
			t.Errorf("%s: revalidated GET: %d %q, want 200 with the stored body", c.name, resp.StatusCode, body)
		}
		if got := o.lastINM("/reval"); got != `"v0"` {
			t.Errorf("%s: the upstream saw If-None-Match %q, want \"v0\"", c.name, got)
		}
		if got, want := resp.Header.Get("X-Validated"), fmt.Sprint(i+2); got != want {
			t.Errorf("%s: x-validated %q, want %q (the 304's fields update the entry)", c.name, got, want)
		}
		if o.count("/reval") != i+2 {
			t.Errorf("%s: upstream count %d, want %d", c.name, o.count("/reval"), i+2)
		}
	}
	o.version.Store(1)
	if resp, body := get(t, newClient(nil), base+"/reval"); string(body) != "/reval 4" || resp.Header.Get("Etag") != `"v1"` {
		t.Errorf("changed resource: %q etag %q, want the new response", body, resp.Header.Get("Etag"))
	}
	if _, body := get(t, newClient(nil), base+"/reval"); string(body) != "/reval 4" || o.lastINM("/reval") != `"v1"` {
		t.Errorf("after replacement: %q (upstream saw If-None-Match %q), want the new stored body", body, o.lastINM("/reval"))
	}
	// A no-cache response is stored but revalidated on every use.
	get(t, newClient(nil), base+"/must")
	if _, body := get(t, newClient(nil), base+"/must"); string(body) != "/must 1" || o.lastINM("/must") != `"m"` || o.count("/must") != 2 {
		t.Errorf("no-cache response: %q, upstream saw %d requests, the last with If-None-Match %q; want the stored body after a 304",
			body, o.count("/must"), o.lastINM("/must"))
	}
	// A request's no-cache revalidates a fresh entry.
	get(t, newClient(nil), base+"/fresh")
	get(t, newClient(nil), base+"/fresh", "Cache-Control", "no-cache")
	if o.count("/fresh") != 2 || o.lastINM("/fresh") != `"f"` {
		t.Errorf("request no-cache: upstream saw /fresh %d times, the last with If-None-Match %q; want 2 and \"f\"", o.count("/fresh"), o.lastINM("/fresh"))
	}
	waitCounter(t, admin, "http.ingress_http.cache.revalidated", 4)
	if c := adminCounters(t, admin); c["http.ingress_http.cache.validations"] != 6 {
		t.Errorf("validations %v, want 6", c["http.ingress_http.cache.validations"])
	}
}

// TestCacheKeysOnAllowedVaryHeaders: a response with Vary on an allowed
// header is stored per value of that request header; one that varies on
// a header not in allowed_vary_headers is not stored.
func TestCacheKeysOnAllowedVaryHeaders(t *testing.T) {
	o, _, _, base := startCache(t, 1<<20, 64<<10)
	c := newClient(nil)
	for _, tc := range []struct{ lang, want string }{{"en", "en 1"}, {"fr", "fr 2"}, {"en", "en 1"}, {"fr", "fr 2"}} {
		if _, body := get(t, c, base+"/vary", "Accept-Language", tc.lang); string(body) != tc.want {
			t.Errorf("Accept-Language %s: %q, want %q", tc.lang, body, tc.want)
		}
	}
	if n := o.count("/vary"); n != 2 {
		t.Errorf("the upstream saw /vary %d times, want 2", n)
	}
	get(t, c, base+"/vary-ua")
	get(t, c, base+"/vary-ua")
	if n := o.count("/vary-ua"); n != 2 {
		t.Errorf("Vary: User-Agent (not allowed): the upstream saw %d requests, want 2", n)
	}
}

// TestCacheDoesNotStoreNoStorePrivateOrAuthorized: no-store and private
// responses are not stored; a request with Cache-Control: no-store
// bypasses the cache; a request with Authorization neither uses nor fills
// a plain max-age entry, but uses a public one.
func TestCacheDoesNotStoreNoStorePrivateOrAuthorized(t *testing.T) {
	o, _, p, base := startCache(t, 1<<20, 64<<10)
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	c := newClient(nil)
	for _, path := range []string{"/nostore", "/private", "/nocache/x"} {
		get(t, c, base+path)
		get(t, c, base+path)
		if n := o.count(path); n != 2 {
			t.Errorf("%s: the upstream saw %d requests, want 2", path, n)
		}
	}
	get(t, c, base+"/fresh", "Cache-Control", "no-store")
	get(t, c, base+"/fresh", "Cache-Control", "no-store")
	if n := o.count("/fresh"); n != 2 {
		t.Errorf("request no-store: the upstream saw %d requests, want 2", n)
	}
	get(t, c, base+"/fresh") // stored now
	get(t, c, base+"/fresh", "Authorization", "Bearer a")
	if n := o.count("/fresh"); n != 4 {
		t.Errorf("Authorization: the upstream saw /fresh %d times, want 4 (not served from the cache)", n)
	}
	get(t, c, base+"/fresh-auth", "Authorization", "Bearer a")
	get(t, c, base+"/fresh-auth")
	if n := o.count("/fresh-auth"); n != 2 {
		t.Errorf("a response to an Authorization request was stored: upstream saw %d, want 2", n)
	}
	get(t, c, base+"/public", "Authorization", "Bearer a")
	if _, body := get(t, c, base+"/public", "Authorization", "Bearer b"); string(body) != "/public 1" {
		t.Errorf("public response with Authorization: %q, want the stored /public 1", body)
	}
	waitCounter(t, admin, "http.ingress_http.cache.bypass", 2)
}

// TestCacheInvalidatesOnUnsafeMethods: a POST that gets a 200 drops the
// stored response of its URL; one that gets a 500 does not.
func TestCacheInvalidatesOnUnsafeMethods(t *testing.T) {
	o, _, _, base := startCache(t, 1<<20, 64<<10)
	c := newClient(nil)
	for _, path := range []string{"/fresh", "/fresh-fail"} {
		get(t, c, base+path)
		get(t, c, base+path)
		resp, err := c.Post(base+path, "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		get(t, c, base+path)
	}
	if n := o.count("/fresh"); n != 3 {
		t.Errorf("/fresh: the upstream saw %d requests (GET, POST, GET), want 3", n)
	}
	if n := o.count("/fresh-fail"); n != 2 {
		t.Errorf("/fresh-fail: the upstream saw %d requests, want 2 (a failed POST invalidates nothing)", n)
	}
}

// TestCacheEvictsLeastRecentlyUsed: with max_size_bytes for about four
// 4 KiB entries, storing a fifth evicts the least recently used; the
// gauges stay within the bound.
func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	o, _, p, base := startCache(t, 20000, 8<<10)
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)
	c := newClient(nil)
	for i := 1; i <= 4; i++ {
		get(t, c, fmt.Sprintf("%s/lru/%d", base, i))
	}
	get(t, c, base+"/lru/1") // used: /lru/2 is now the least recent
	get(t, c, base+"/lru/5")
	get(t, c, base+"/lru/1")
	get(t, c, base+"/lru/2")
	if o.count("/lru/1") != 1 || o.count("/lru/2") != 2 {
		t.Errorf("upstream saw /lru/1 %d and /lru/2 %d times, want 1 (kept) and 2 (evicted)", o.count("/lru/1"), o.count("/lru/2"))
	}
	cs := adminCounters(t, admin)
	if cs["http.ingress_http.cache.evictions"] < 1 || cs["http.ingress_http.cache.bytes"] > 20000 || cs["http.ingress_http.cache.bytes"] == 0 {
		t.Errorf("evictions %v bytes %v, want >= 1 and within 20000", cs["http.ingress_http.cache.evictions"], cs["http.ingress_http.cache.bytes"])
	}
}

// TestCacheStreamsWhileStoringAndSkipsLargeOrBrokenBodies: a cacheable
// response reaches the client while its body is still coming (the cache
// never holds it back), and is then served from the cache; a body over
// max_body_bytes streams through whole and is not stored; a response cut
// short by the upstream is not stored.
func TestCacheStreamsWhileStoringAndSkipsLargeOrBrokenBodies(t *testing.T) {
	o, _, _, base := startCache(t, 1<<20, 16<<10)
	c := newClient(nil)
	resp, err := c.Get(base + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "part1" {
		t.Fatalf("first part before the upstream finished: %q %v", first, err)
	}
	close(o.release)
	rest, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(rest) != "part2" {
		t.Fatalf("rest: %q %v", rest, err)
	}
	if _, body := get(t, c, base+"/stream"); string(body) != "part1part2" || o.count("/stream") != 1 {
		t.Errorf("streamed response: second GET %q, upstream saw %d; want it stored", body, o.count("/stream"))
	}
	for i := 0; i < 2; i++ {
		if _, body := get(t, c, base+"/big"); len(body) != bigBody {
			t.Fatalf("big body: %d bytes, want %d", len(body), bigBody)
		}
	}
	if n := o.count("/big"); n != 2 {
		t.Errorf("big body: the upstream saw %d requests, want 2 (not stored)", n)
	}
	for i := 0; i < 2; i++ {
		resp, err := newClient(nil).Get(base + "/trunc")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	if n := o.count("/trunc"); n != 2 {
		t.Errorf("truncated response: the upstream saw %d requests, want 2 (not stored)", n)
	}
}

// TestCacheConfigErrorsNameFileLineAndKey: sluice validate rejects a bad
// cache filter table with its file, line and key.
func TestCacheConfigErrorsNameFileLineAndKey(t *testing.T) {
	dir := t.TempDir()
	for i, tc := range []struct{ filter, line, key string }{
		{strings.Replace(cacheFilter(100, 1000), "max_body_bytes = 1000", "max_body_bytes = 1000", 1), "max_body_bytes = 1000", "max_body_bytes"},
		{cacheFilter(1<<20, 1000) + "\n      max_entries = 3", "max_entries = 3", "max_entries"},
		{strings.Replace(cacheFilter(1<<20, 1000), `["accept-language"]`, `["bad name"]`, 1), "allowed_vary_headers", `allowed_vary_headers\[0\]`},
	} {
		text := withHTTPFilter(config(1, route(`prefix = "/"`, "up"), cluster("up", "127.0.0.1:1")), tc.filter)
		path := filepath.Join(dir, fmt.Sprintf("bad%d.toml", i))
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out := gwtest.Exec(t, 30*time.Second, "validate", "-c", path)
		want := fmt.Sprintf("%s:%d:", path, lineOf(t, text, tc.line))
		if code != 1 || !strings.Contains(out, want) || !strings.Contains(out, strings.ReplaceAll(tc.key, `\`, "")) {
			t.Errorf("%s: exit %d, output %q; want 1 naming %q and %s", tc.line, code, out, want, tc.key)
		}
	}
}

// TestCacheHitForAGetWithABody: a GET with a body that hits the cache
// gets the stored response over HTTP/1.1 and HTTP/2; the body reaches no
// upstream.
func TestCacheHitForAGetWithABody(t *testing.T) {
	o, _, _, base := startCache(t, 1<<20, 64<<10)
	get(t, newClient(nil), base+"/fresh")
	for _, c := range []*http.Client{newClient(nil), h2cClient(nil)} {
		req, _ := http.NewRequest("GET", base+"/fresh", strings.NewReader(strings.Repeat("q", 100<<10)))
		resp, err := c.Do(req)
		if err != nil {
			// The proxy may answer and close before the client wrote
			// everything (HTTP/1.1); what matters is the upstream.
			t.Logf("GET with a body: %v", err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "/fresh 1" {
			t.Errorf("GET with a body %s: %d %q, want the stored response", resp.Proto, resp.StatusCode, body)
		}
	}
	if n := o.count("/fresh"); n != 1 {
		t.Errorf("the upstream saw /fresh %d times, want 1", n)
	}
}
