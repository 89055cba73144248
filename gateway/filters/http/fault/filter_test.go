package fault

import (
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/config"
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
func (c *callbacks) Post(fn func())                                        {}

func build(t *testing.T, c *Config) *Factory {
	t.Helper()
	f, err := c.Build(&registry.BuildContext{StatScope: "http.t."})
	if err != nil {
		t.Fatal(err)
	}
	return f.(*Factory)
}

func req(hdr ...string) *httpfilter.RequestHeaders {
	h := &httpfilter.RequestHeaders{Method: []byte("GET"), Path: []byte("/")}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Add(hdr[i], hdr[i+1])
	}
	return h
}

func ptr[T any](v T) *T { return &v }

// TestHeaderPercentageIsCappedByConfig: a header abort's percentage header
// may lower the configured share but not raise it, and an invalid one
// leaves the configured share.
func TestHeaderPercentageIsCappedByConfig(t *testing.T) {
	zero := build(t, &Config{Abort: &Abort{HeaderAbort: true, Percentage: ptr(0.0)}})
	all := build(t, &Config{Abort: &Abort{HeaderAbort: true}})
	for i := 0; i < 50; i++ {
		if _, _, ok := zero.s.abortFor(req(HeaderAbortRequest, "503", HeaderAbortPercentage, "100")); ok {
			t.Fatal("a percentage header of 100 raised a configured 0")
		}
		if _, _, ok := all.s.abortFor(req(HeaderAbortRequest, "503", HeaderAbortPercentage, "0")); ok {
			t.Fatal("a percentage header of 0 did not turn the abort off")
		}
		if st, _, ok := all.s.abortFor(req(HeaderAbortRequest, "503", HeaderAbortPercentage, "x")); !ok || st != 503 {
			t.Fatal("an invalid percentage header did not leave the configured 100")
		}
		if st, g, ok := all.s.abortFor(req(HeaderAbortGRPCRequest, "4")); !ok || st != 200 || g != 4 {
			t.Fatalf("gRPC header abort: %d %d %v", st, g, ok)
		}
		if _, _, ok := all.s.abortFor(req()); ok {
			t.Fatal("a header abort without the header aborted")
		}
	}
}

// TestPercentageDraws: 50% aborts about half of many requests.
func TestPercentageDraws(t *testing.T) {
	f := build(t, &Config{Abort: &Abort{HTTPStatus: 503, Percentage: ptr(50.0)}})
	n := 0
	for i := 0; i < 10000; i++ {
		if _, _, ok := f.s.abortFor(req()); ok {
			n++
		}
	}
	if n < 4500 || n > 5500 {
		t.Fatalf("50%% aborted %d of 10000", n)
	}
}

// TestMaxActiveFaultsOverflow: with max_active_faults = 1 and a delay in
// progress, the next request gets no fault and counts as an overflow; when
// the first stream ends, the next is delayed again.
func TestMaxActiveFaultsOverflow(t *testing.T) {
	f := build(t, &Config{MaxActiveFaults: ptr(int64(1)), Delay: &Delay{FixedDelay: nil, HeaderDelay: true}})
	first := f.NewFilter(&callbacks{}).(*filter)
	if st := first.DecodeHeaders(req(HeaderDelayRequest, "60000"), true); st != httpfilter.HeadersStopIteration {
		t.Fatalf("first request: %v, want it held", st)
	}
	cb := &callbacks{}
	second := f.NewFilter(cb).(*filter)
	if st := second.DecodeHeaders(req(HeaderDelayRequest, "60000"), true); st != httpfilter.HeadersContinue || cb.info.ResponseFlags != 0 {
		t.Fatalf("second request: %v flags %v, want it through", st, cb.info.ResponseFlags)
	}
	second.OnDestroy()
	if f.stats.FaultsOverflow.Value() != 1 || f.stats.ActiveFaults.Value() != 1 {
		t.Fatalf("overflow %d active %d, want 1 and 1", f.stats.FaultsOverflow.Value(), f.stats.ActiveFaults.Value())
	}
	first.OnDestroy()
	if f.stats.ActiveFaults.Value() != 0 {
		t.Fatalf("active %d after the held stream ended", f.stats.ActiveFaults.Value())
	}
	third := f.NewFilter(&callbacks{}).(*filter)
	if st := third.DecodeHeaders(req(HeaderDelayRequest, "60000"), true); st != httpfilter.HeadersStopIteration {
		t.Fatalf("third request: %v, want it held", st)
	}
	third.OnDestroy()
}

// TestPaceReleasesASixteenthOfASecondAtATime: at 16 KiB/s a limited
// stream gets 1 KiB per call, the first at once and the next after about
// a sixteenth of a second; an unlimited one gets everything.
func TestPaceReleasesASixteenthOfASecondAtATime(t *testing.T) {
	f := build(t, &Config{ResponseRateLimit: &ResponseRateLimit{FixedLimitKbps: 16}})
	fl := f.NewFilter(&callbacks{}).(*filter)
	fl.DecodeHeaders(req(), true)
	start := time.Now()
	if k := fl.Pace(10000); k != 1024 {
		t.Fatalf("first Pace = %d, want 1024", k)
	}
	if k := fl.Pace(100); k != 100 {
		t.Fatalf("second Pace = %d, want 100", k)
	}
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Fatalf("second Pace returned after %v, want about 62ms", el)
	}
	fl.OnDestroy()
	if f.stats.ResponseRLInjected.Value() != 1 || f.stats.ActiveFaults.Value() != 0 {
		t.Fatalf("response_rl_injected %d active %d", f.stats.ResponseRLInjected.Value(), f.stats.ActiveFaults.Value())
	}
	free := build(t, &Config{Abort: &Abort{HTTPStatus: 503, Percentage: ptr(0.0)}}).NewFilter(&callbacks{}).(*filter)
	free.DecodeHeaders(req(), true)
	if k := free.Pace(10000); k != 10000 {
		t.Fatalf("unlimited Pace = %d", k)
	}
}

// route is an httpfilter.Route with a cluster name and a per-filter value.
type route struct {
	cluster string
	pf      any
}

func (r *route) Name() string               { return "r" }
func (r *route) FilterDisabled(string) bool { return false }
func (r *route) PerFilterConfig(string) any { return r.pf }
func (r *route) ClusterName() string        { return r.cluster }

type routedCallbacks struct {
	callbacks
	r httpfilter.Route
}

func (c *routedCallbacks) Route() httpfilter.Route { return c.r }

// TestMatchersRestrictFaults: upstream_cluster, headers and
// downstream_nodes must all match for a request to get a fault; a
// per-route value replaces the config, or disables the filter.
func TestMatchersRestrictFaults(t *testing.T) {
	f := build(t, &Config{
		Abort:           &Abort{HTTPStatus: 503},
		UpstreamCluster: "pay",
		Headers:         []config.HeaderMatcher{{Name: "x-chaos", Exact: "on"}, {Name: ":method", Prefix: "PO"}},
		DownstreamNodes: []string{"canary"},
	})
	abort := func(r httpfilter.Route, h *httpfilter.RequestHeaders) *httpfilter.LocalReply {
		cb := &routedCallbacks{r: r}
		fl := f.NewFilter(cb).(*filter)
		fl.DecodeHeaders(h, true)
		fl.OnDestroy()
		return cb.reply
	}
	post := func(hdr ...string) *httpfilter.RequestHeaders {
		h := req(hdr...)
		h.Method = []byte("POST")
		return h
	}
	all := []string{"x-chaos", "on", HeaderDownstreamNode, "canary"}
	if r := abort(&route{cluster: "pay"}, post(all...)); r == nil || r.Status != 503 || r.Flags != httpfilter.FlagFaultInjected {
		t.Fatalf("matching request: %+v, want the 503 abort", r)
	}
	for what, tc := range map[string]struct {
		r httpfilter.Route
		h *httpfilter.RequestHeaders
	}{
		"other cluster":      {&route{cluster: "other"}, post(all...)},
		"no route":           {nil, post(all...)},
		"header value":       {&route{cluster: "pay"}, post("x-chaos", "off", HeaderDownstreamNode, "canary")},
		"method":             {&route{cluster: "pay"}, req(all...)},
		"other node":         {&route{cluster: "pay"}, post("x-chaos", "on", HeaderDownstreamNode, "prod")},
		"disabled per route": {&route{cluster: "pay", pf: &perRoute{disabled: true}}, post(all...)},
	} {
		if r := abort(tc.r, tc.h); r != nil {
			t.Errorf("%s: aborted with %d", what, r.Status)
		}
	}
	pr, err := (&PerRoute{Config: Config{Abort: &Abort{HTTPStatus: 418}}}).BuildPerRoute(nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := abort(&route{cluster: "other", pf: pr}, req()); r == nil || r.Status != 418 {
		t.Fatalf("per-route abort: %+v, want 418 (the route's config replaces the filter's matchers too)", r)
	}
}
