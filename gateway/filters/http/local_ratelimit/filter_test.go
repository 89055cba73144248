package localratelimit

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/hoststate"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// callbacks is a hand-written DecoderCallbacks that records local replies.
type callbacks struct {
	info  httpfilter.StreamInfo
	reply *httpfilter.LocalReply
}

func (c *callbacks) StreamID() uint64                                      { return 1 }
func (c *callbacks) ConnectionID() uint64                                  { return 1 }
func (c *callbacks) Info() *httpfilter.StreamInfo                          { return &c.info }
func (c *callbacks) Route() httpfilter.Route                               { return nil }
func (c *callbacks) ClearRouteCache()                                      {}
func (c *callbacks) ContinueDecoding()                                     {}
func (c *callbacks) SendLocalReply(r httpfilter.LocalReply)                { c.reply = &r }
func (c *callbacks) EncodeHeaders(*httpfilter.ResponseHeaders, bool) error { return nil }
func (c *callbacks) EncodeData(*buffer.Buffer, bool) error                 { return nil }
func (c *callbacks) EncodeTrailers(*httpfilter.Headers) error              { return nil }
func (c *callbacks) Encode1xxHeaders(*httpfilter.ResponseHeaders) error    { return nil }
func (c *callbacks) Post(fn func())                                        { fn() }

func build(t *testing.T, tomlText string, store hoststate.Store) *Factory {
	t.Helper()
	c := &Config{}
	if _, err := toml.Decode(tomlText, c); err != nil {
		t.Fatal(err)
	}
	f, err := c.BuildWith(&registry.BuildContext{Path: "listener[0].http_filter[0]"}, store)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// request runs one request through a new filter and returns the local
// reply (nil if it passed) and the response headers added on the way back.
func request(f *Factory, from string, hdrs ...string) (*httpfilter.LocalReply, *httpfilter.ResponseHeaders) {
	cb := &callbacks{}
	if from != "" {
		cb.info.DownstreamRemote = netip.MustParseAddrPort(from)
	}
	fl := f.NewFilter(cb).(*filter)
	h := &httpfilter.RequestHeaders{Method: []byte("GET"), Path: []byte("/")}
	for i := 0; i+1 < len(hdrs); i += 2 {
		h.Add(hdrs[i], hdrs[i+1])
	}
	st := fl.DecodeHeaders(h, true)
	if (st == httpfilter.HeadersStopIteration) != (cb.reply != nil) {
		panic("status and local reply disagree")
	}
	resp := &httpfilter.ResponseHeaders{Status: 200}
	if cb.reply == nil {
		fl.EncodeHeaders(resp, true)
	}
	fl.OnDestroy()
	return cb.reply, resp
}

func TestLimitWith429AndHeaders(t *testing.T) {
	f := build(t, `
stat_prefix = "rl"
enable_x_ratelimit_headers = "DRAFT_VERSION_03"
token_bucket = { max_tokens = 2, tokens_per_fill = 1, fill_interval = "1h" }
`, hoststate.LocalStore{})
	for i := 0; i < 2; i++ {
		r, resp := request(f, "")
		if r != nil {
			t.Fatalf("request %d limited", i+1)
		}
		if got := string(resp.Get("x-ratelimit-remaining")); got != []string{"1", "0"}[i] {
			t.Fatalf("request %d: x-ratelimit-remaining %q", i+1, got)
		}
	}
	r, _ := request(f, "")
	if r == nil || r.Status != 429 || r.Details != "local_rate_limited" {
		t.Fatalf("third request: reply %+v, want 429", r)
	}
	h := httpfilter.Headers{Fields: r.Headers}
	if string(h.Get("x-ratelimit-limit")) != "2" || string(h.Get("x-ratelimit-remaining")) != "0" {
		t.Fatalf("429 headers %q", r.Headers)
	}
	if reset := string(h.Get("x-ratelimit-reset")); reset == "" || reset == "0" || len(reset) > 4 {
		t.Fatalf("x-ratelimit-reset %q, want seconds within the hour", reset)
	}
	if s := f.Stats(); s.OK.Value() != 2 || s.RateLimited.Value() != 1 || s.Enabled.Value() != 3 {
		t.Fatalf("stats ok %d limited %d enabled %d", s.OK.Value(), s.RateLimited.Value(), s.Enabled.Value())
	}
}

func TestDescriptorsSelectBuckets(t *testing.T) {
	f := build(t, `
stat_prefix = "rl"
status = 503
token_bucket = { max_tokens = 1, fill_interval = "1h" }
[[descriptor]]
header = "X-Tenant"
value = "vip"
token_bucket = { max_tokens = 100, fill_interval = "1h" }
[[descriptor]]
header = "x-api-key"
token_bucket = { max_tokens = 1, fill_interval = "1h" }
[[descriptor]]
source_address = true
buckets = 65536
token_bucket = { max_tokens = 1, fill_interval = "1h" }
`, hoststate.LocalStore{})
	for i := 0; i < 50; i++ {
		if r, _ := request(f, "", "x-tenant", "vip"); r != nil {
			t.Fatalf("vip request %d limited", i)
		}
	}
	// Each API key has its own bucket of 1.
	for _, k := range []string{"alice", "bob"} {
		if r, _ := request(f, "", "x-api-key", k); r != nil {
			t.Fatalf("first request of key %s limited", k)
		}
		if r, _ := request(f, "", "x-api-key", k); r == nil || r.Status != 503 {
			t.Fatalf("second request of key %s: %+v, want 503", k, r)
		}
	}
	// Otherwise, by source address.
	if r, _ := request(f, "192.0.2.1:1000"); r != nil {
		t.Fatal("first request from 192.0.2.1 limited")
	}
	if r, _ := request(f, "192.0.2.1:2000"); r == nil {
		t.Fatal("second request from 192.0.2.1 passed")
	}
	if r, _ := request(f, "192.0.2.2:1000"); r != nil {
		t.Fatal("first request from 192.0.2.2 limited")
	}
}

func TestLimitSharedAcrossWorkersThroughRegion(t *testing.T) {
	r, err := hoststate.New(hoststate.Options{Slots: 64, Workers: 2, ArenaWords: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cfg := `
stat_prefix = "rl"
token_bucket = { max_tokens = 10, fill_interval = "1h" }
`
	// Two workers build the same config: they get the same buckets.
	w0, w1 := build(t, cfg, r), build(t, cfg, r)
	passed := 0
	for i := 0; i < 20; i++ {
		f := w0
		if i%2 == 1 {
			f = w1
		}
		if rep, _ := request(f, ""); rep == nil {
			passed++
		}
	}
	if passed != 10 {
		t.Fatalf("%d requests passed across two workers, want the global 10", passed)
	}
	// Without a region, each of 2 workers gets half.
	local := build(t, cfg, hoststate.LocalStore{Workers: 2})
	passed = 0
	for i := 0; i < 20; i++ {
		if rep, _ := request(local, ""); rep == nil {
			passed++
		}
	}
	if passed != 5 {
		t.Fatalf("local store with 2 workers passed %d, want 5", passed)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, toml, want string }{
		{"no prefix", `token_bucket = { max_tokens = 1, fill_interval = "1s" }`, "stat_prefix"},
		{"no bucket", `stat_prefix = "x"`, "token_bucket: max_tokens"},
		{"no interval", `stat_prefix = "x"
token_bucket = { max_tokens = 1 }`, "fill_interval"},
		{"headers mode", `stat_prefix = "x"
enable_x_ratelimit_headers = "v4"
token_bucket = { max_tokens = 1, fill_interval = "1s" }`, "enable_x_ratelimit_headers"},
		{"descriptor both", `stat_prefix = "x"
token_bucket = { max_tokens = 1, fill_interval = "1s" }
[[descriptor]]
header = "a"
source_address = true`, "descriptor[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Config{}
			if _, err := toml.Decode(tc.toml, c); err != nil {
				t.Fatal(err)
			}
			_, err := c.BuildWith(&registry.BuildContext{}, hoststate.LocalStore{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestRegistered(t *testing.T) {
	if _, ok := registry.Lookup(Name); !ok {
		t.Fatal("filter not registered")
	}
}

func BenchmarkDecodeHeaders(b *testing.B) {
	r, _ := hoststate.New(hoststate.Options{Slots: 8, Workers: 1, ArenaWords: 8})
	defer r.Close()
	c := &Config{StatPrefix: "rl", TokenBucket: TokenBucket{MaxTokens: 1 << 30, TokensPerFill: 1 << 30}}
	c.TokenBucket.FillInterval.Duration = time.Second
	f, err := c.BuildWith(&registry.BuildContext{}, r)
	if err != nil {
		b.Fatal(err)
	}
	cb := &callbacks{}
	h := &httpfilter.RequestHeaders{}
	b.ReportAllocs()
	for b.Loop() {
		fl := filter{f: f, cb: cb}
		fl.DecodeHeaders(h, true)
	}
}
