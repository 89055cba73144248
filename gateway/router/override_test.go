package router

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/fuzzcorpus"
)

func testRoute(timeout time.Duration, rp *RetryPolicy) *Route {
	def := &RetryPolicy{NumRetries: 1, BaseInterval: 25 * time.Millisecond, MaxInterval: 250 * time.Millisecond, BodyLimit: 1 << 20}
	return &Route{Timeout: timeout, Retry: rp, defaultRetry: def}
}

func reqWith(kv ...string) *httpfilter.RequestHeaders {
	h := &httpfilter.RequestHeaders{Method: []byte("GET"), Path: []byte("/")}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// TestOverrideTimeouts checks Envoy's timeout arithmetic: the headers
// replace the route's timeouts, a per-try timeout not below the route
// timeout is ignored, malformed values are ignored, and
// x-envoy-expected-rq-timeout-ms announces the result.
func TestOverrideTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name         string
		route        time.Duration
		perTryRoute  time.Duration
		hdrs         []string
		wantTimeout  time.Duration
		wantPerTry   time.Duration // -1: no policy
		wantExpected string        // "" absent
	}{
		{"timeout", 15 * time.Second, -1, []string{"x-envoy-upstream-rq-timeout-ms", "250"}, 250 * time.Millisecond, -1, "250"},
		{"timeout 0 disables", 15 * time.Second, -1, []string{"x-envoy-upstream-rq-timeout-ms", "0"}, 0, -1, ""},
		{"negative ignored", 15 * time.Second, -1, []string{"x-envoy-upstream-rq-timeout-ms", "-5"}, 15 * time.Second, -1, "15000"},
		{"non-numeric ignored", 2 * time.Second, -1, []string{"x-envoy-upstream-rq-timeout-ms", "12ms"}, 2 * time.Second, -1, "2000"},
		{"overflow ignored", 2 * time.Second, -1, []string{"x-envoy-upstream-rq-timeout-ms", "99999999999999999999999"}, 2 * time.Second, -1, "2000"},
		{"huge capped", 2 * time.Second, -1, []string{"x-envoy-upstream-rq-timeout-ms", "18446744073709551"}, maxHeaderTimeout, -1, strconv.FormatInt(maxHeaderTimeout.Milliseconds(), 10)},
		{"per-try without policy", 15 * time.Second, -1, []string{"x-envoy-upstream-rq-per-try-timeout-ms", "100"}, 15 * time.Second, 100 * time.Millisecond, "100"},
		{"per-try over global ignored", time.Second, 0, []string{"x-envoy-upstream-rq-per-try-timeout-ms", "1000"}, time.Second, 0, "1000"},
		{"per-try with timeout 0 kept", time.Second, 0, []string{"x-envoy-upstream-rq-timeout-ms", "0", "x-envoy-upstream-rq-per-try-timeout-ms", "300"}, 0, 300 * time.Millisecond, "300"},
		{"route per-try over header timeout ignored", 10 * time.Second, 5 * time.Second, []string{"x-envoy-upstream-rq-timeout-ms", "2000"}, 2 * time.Second, 0, "2000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rp *RetryPolicy
			if tc.perTryRoute >= 0 {
				rp = &RetryPolicy{On: Retry5xx, NumRetries: 1, PerTryTimeout: tc.perTryRoute}
			}
			f := &filter{route: testRoute(tc.route, rp)}
			f.timeout, f.rp = tc.route, rp
			h := reqWith(tc.hdrs...)
			f.override(h, true)
			if f.timeout != tc.wantTimeout {
				t.Errorf("timeout %v, want %v", f.timeout, tc.wantTimeout)
			}
			switch {
			case tc.wantPerTry < 0 && f.rp != nil:
				t.Errorf("policy %+v, want none", f.rp)
			case tc.wantPerTry >= 0 && (f.rp == nil || f.rp.PerTryTimeout != tc.wantPerTry):
				t.Errorf("policy %+v, want per-try %v", f.rp, tc.wantPerTry)
			}
			if got := string(h.Get("x-envoy-expected-rq-timeout-ms")); got != tc.wantExpected {
				t.Errorf("expected-rq-timeout-ms %q, want %q", got, tc.wantExpected)
			}
			for i := 0; i < len(tc.hdrs); i += 2 {
				if h.Has(tc.hdrs[i]) {
					t.Errorf("%s not removed", tc.hdrs[i])
				}
			}
		})
	}
}

// TestOverrideRetries checks the merge of the retry headers into the
// route's policy, as Envoy's RetryStateImpl does.
func TestOverrideRetries(t *testing.T) {
	routePolicy := &RetryPolicy{On: Retry5xx, NumRetries: 2, StatusCodes: []int{418}}
	for _, tc := range []struct {
		name      string
		policy    *RetryPolicy
		hdrs      []string
		wantNil   bool
		wantOn    uint16
		wantNum   int
		wantCodes []int
	}{
		{"retry-on without policy", nil, []string{"x-envoy-retry-on", "5xx, connect-failure"}, false, Retry5xx | RetryConnectFailure, 1, nil},
		{"unknown only: no policy", nil, []string{"x-envoy-retry-on", "bogus,,unavailable"}, true, 0, 0, nil},
		{"grpc names only in grpc header", nil, []string{"x-envoy-retry-grpc-on", "unavailable,5xx,cancelled"}, false, RetryGrpcUnavailable | RetryGrpcCancelled, 1, nil},
		{"merged", routePolicy, []string{"x-envoy-retry-on", "reset"}, false, Retry5xx | RetryReset, 2, []int{418}},
		{"max-retries", routePolicy, []string{"x-envoy-max-retries", "5"}, false, Retry5xx, 5, []int{418}},
		{"max-retries zero", routePolicy, []string{"x-envoy-max-retries", "0"}, false, Retry5xx, 0, []int{418}},
		{"max-retries malformed", routePolicy, []string{"x-envoy-max-retries", "-1"}, false, Retry5xx, 2, []int{418}},
		{"max-retries without conditions", nil, []string{"x-envoy-max-retries", "3"}, true, 0, 0, nil},
		{"status codes added", routePolicy, []string{"x-envoy-retriable-status-codes", "503, 9999,x,409"}, false, Retry5xx, 2, []int{503, 409, 418}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &filter{route: testRoute(time.Second, tc.policy)}
			f.timeout, f.rp = time.Second, tc.policy
			h := reqWith(tc.hdrs...)
			f.override(h, true)
			if tc.wantNil {
				if f.rp != nil {
					t.Fatalf("policy %+v, want none", f.rp)
				}
				return
			}
			if f.rp == nil {
				t.Fatal("no policy")
			}
			if f.rp.On != tc.wantOn || f.rp.NumRetries != tc.wantNum || !slices.Equal(f.rp.StatusCodes, tc.wantCodes) {
				t.Errorf("policy on=%b num=%d codes=%v, want on=%b num=%d codes=%v", f.rp.On, f.rp.NumRetries,
					f.rp.StatusCodes, tc.wantOn, tc.wantNum, tc.wantCodes)
			}
			if tc.policy != nil && (tc.policy.On != Retry5xx || tc.policy.NumRetries != 2 || len(tc.policy.StatusCodes) != 1) {
				t.Errorf("the route's policy changed: %+v", tc.policy)
			}
			for _, fl := range h.Fields {
				if n := string(fl.Name); n != "x-envoy-expected-rq-timeout-ms" {
					t.Errorf("consumed header left: %s", n)
				}
			}
		})
	}
}

// TestOverrideGrpcTimeout checks grpc_timeout_header_max: the header's
// value (less the offset) capped by the maximum, no cap with 0, the
// maximum without a header, nothing for a request that is not gRPC.
func TestOverrideGrpcTimeout(t *testing.T) {
	for _, tc := range []struct {
		name        string
		max, offset time.Duration
		ct, gt      string
		want        time.Duration
		wantHeader  string
	}{
		{"under max", 5 * time.Second, 0, "application/grpc", "100m", 100 * time.Millisecond, "100m"},
		{"capped", time.Second, 0, "application/grpc+proto", "5S", time.Second, "1000m"},
		{"no cap", 0, 0, "application/grpc", "2M", 2 * time.Minute, "120000m"},
		{"absent: max", 3 * time.Second, 0, "application/grpc", "", 3 * time.Second, "3000m"},
		{"absent, no cap: none", 0, 0, "application/grpc", "", 0, ""},
		{"malformed: max", 3 * time.Second, 0, "application/grpc", "5x", 3 * time.Second, "3000m"},
		{"offset", 0, 50 * time.Millisecond, "application/grpc", "200m", 150 * time.Millisecond, "150m"},
		{"offset over value", 0, time.Second, "application/grpc", "200m", 200 * time.Millisecond, "200m"},
		{"micros round up", 0, 0, "application/grpc", "1500u", 2 * time.Millisecond, "2m"},
		{"not grpc", time.Second, 0, "application/grpc-web", "5S", 15 * time.Second, "5S"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := testRoute(15*time.Second, nil)
			rt.grpcTimeout, rt.grpcMax, rt.grpcOffset = true, tc.max, tc.offset
			f := &filter{route: rt, timeout: rt.Timeout}
			h := reqWith("content-type", tc.ct)
			if tc.gt != "" {
				h.Add("grpc-timeout", tc.gt)
			}
			f.override(h, false)
			if f.timeout != tc.want {
				t.Errorf("timeout %v, want %v", f.timeout, tc.want)
			}
			if got := string(h.Get("grpc-timeout")); got != tc.wantHeader {
				t.Errorf("grpc-timeout upstream %q, want %q", got, tc.wantHeader)
			}
		})
	}
}

// TestGrpcStatusRetryConditions: the gRPC conditions are met by the
// grpc-status of the response head, whatever its HTTP status.
func TestGrpcStatusRetryConditions(t *testing.T) {
	p := &RetryPolicy{On: RetryGrpcUnavailable}
	for _, tc := range []struct {
		status string
		want   uint16
	}{{"14", RetryGrpcUnavailable}, {"1", RetryGrpcCancelled}, {"4", RetryGrpcDeadlineExceeded},
		{"8", RetryGrpcResourceExhausted}, {"13", RetryGrpcInternal}, {"0", 0}, {"", 0}, {"014", 0}, {"1a", 0}} {
		h := &httpfilter.ResponseHeaders{Status: 200}
		if tc.status != "" {
			h.Add("grpc-status", tc.status)
		}
		if got := retryOnStatus(p, h); got != tc.want {
			t.Errorf("grpc-status %q: conditions %b, want %b", tc.status, got, tc.want)
		}
	}
	h := &httpfilter.ResponseHeaders{Status: 200}
	h.Add("grpc-status", "14")
	if got := retryOnStatus(&RetryPolicy{On: Retry5xx}, h); got != 0 {
		t.Errorf("grpc-status looked at without a gRPC condition: %b", got)
	}
}

// TestAppendGrpcTimeout checks the wire format the router sends upstream.
func TestAppendGrpcTimeout(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Millisecond:             "1m",
		99999999 * time.Millisecond:  "99999999m",
		100000000 * time.Millisecond: "100000S",
		maxHeaderTimeout:             "5256000M",
		1500 * time.Microsecond:      "2m",
	} {
		if got := string(appendGrpcTimeout(nil, d)); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
}

// grpcTimeoutSeeds and retryOnSeeds are the committed seeds of
// FuzzGrpcTimeout and FuzzRetryOn.
var (
	grpcTimeoutSeeds = map[string]string{
		"millis": "100m", "seconds": "5S", "hours_max": "99999999H", "nanos": "1n", "micros": "1500u",
		"nine_digits": "123456789S", "no_unit": "100", "unit_only": "m", "negative": "-1S", "plus": "+1S",
		"empty": "", "space": " 1S",
	}
	retryOnSeeds = map[string]string{
		"one": "5xx", "list": "5xx,gateway-error, reset ,connect-failure", "grpc": "unavailable,cancelled",
		"unknown": "bogus", "empty_items": ",,,", "codes": "503, 504,x,99999999999999999999", "tabs": "\treset\t",
	}
)

// FuzzGrpcTimeout: parsing a grpc-timeout value never panics, gives a
// whole number of milliseconds within maxHeaderTimeout, and the value the
// router sends upstream for it parses back to at most it (exactly it below
// 10^8 ms).
func FuzzGrpcTimeout(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		d, ok := parseGrpcTimeout(data)
		if !ok {
			return
		}
		if d < 0 || d > maxHeaderTimeout || d%time.Millisecond != 0 {
			t.Fatalf("%q: %v", data, d)
		}
		if d == 0 {
			return
		}
		enc := appendGrpcTimeout(nil, d)
		back, ok := parseGrpcTimeout(enc)
		if !ok || back > d || d < 99999999*time.Millisecond && back != d {
			t.Fatalf("%q: %v sent as %q, parsed back as %v %v", data, d, enc, back, ok)
		}
	})
}

// FuzzRetryOn: the retry headers' lists never panic, give only known
// conditions of their header, and status codes from 100 to 599; the
// override headers are all consumed, whatever their values.
func FuzzRetryOn(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if on := parseRetryOn(data, retryOnNames); on&retryGrpc != 0 {
			t.Fatalf("%q: gRPC conditions %b from x-envoy-retry-on", data, on)
		}
		if on := parseRetryOn(data, grpcRetryOnNames); on&^retryGrpc != 0 {
			t.Fatalf("%q: HTTP conditions %b from x-envoy-retry-grpc-on", data, on)
		}
		for _, c := range appendStatusCodes(nil, data) {
			if c < 100 || c > 599 {
				t.Fatalf("%q: status code %d", data, c)
			}
		}
		v := string(data)
		rt := testRoute(time.Second, &RetryPolicy{On: Retry5xx, NumRetries: 1})
		fl := &filter{route: rt, timeout: rt.Timeout, rp: rt.Retry}
		h := reqWith("x-envoy-retry-on", v, "x-envoy-retry-grpc-on", v, "x-envoy-max-retries", v,
			"x-envoy-retriable-status-codes", v, "x-envoy-upstream-rq-timeout-ms", v,
			"x-envoy-upstream-rq-per-try-timeout-ms", v, "x-envoy-upstream-rq-timeout-alt-response", v, "x-other", v)
		fl.override(h, true)
		if h.Len() > 2 || !h.Has("x-other") || h.Len() == 2 && !h.Has("x-envoy-expected-rq-timeout-ms") {
			t.Fatalf("%q: left %v", data, h.Fields)
		}
		if fl.timeout < 0 || fl.timeout > maxHeaderTimeout || fl.rp == nil || fl.rp.NumRetries < 0 {
			t.Fatalf("%q: timeout %v policy %+v", data, fl.timeout, fl.rp)
		}
	})
}

// TestWriteCorpus writes testdata/fuzz/FuzzGrpcTimeout and FuzzRetryOn
// when SLUICE_WRITE_CORPUS=1; otherwise it checks the committed seeds
// exist.
func TestWriteCorpus(t *testing.T) {
	for target, seeds := range map[string]map[string]string{"FuzzGrpcTimeout": grpcTimeoutSeeds, "FuzzRetryOn": retryOnSeeds} {
		b := make(map[string][]byte, len(seeds))
		for name, s := range seeds {
			b[name] = []byte(s)
		}
		fuzzcorpus.Sync(t, target, b)
	}
}

// BenchmarkOverride measures the router's work for a request carrying
// override headers (three among eight ordinary fields) on a route with a
// retry policy: the scan, the removal, the policy copy and the
// x-envoy-expected-rq-timeout-ms value. A request without any costs the
// stream's EnvoyHeaders call only.
func BenchmarkOverride(b *testing.B) {
	rt := testRoute(15*time.Second, &RetryPolicy{On: Retry5xx, NumRetries: 1, StatusCodes: []int{503}})
	tmpl := reqWith("host", "a.example", "user-agent", "bench", "accept", "*/*", "x-envoy-retry-on", "5xx,reset",
		"x-request-id", "6f1c0e0c-5f4f-4a53-9d1a-2a7c1b5f0e11", "x-envoy-max-retries", "3", "x-forwarded-for", "10.0.0.1",
		"x-envoy-upstream-rq-timeout-ms", "2500", "x-forwarded-proto", "http", "cookie", "a=b")
	h := &httpfilter.RequestHeaders{}
	f := &filter{route: rt}
	b.ReportAllocs()
	for b.Loop() {
		h.Fields = append(h.Fields[:0], tmpl.Fields...)
		f.timeout, f.rp = rt.Timeout, rt.Retry
		f.override(h, true)
	}
	if f.timeout != 2500*time.Millisecond || f.rp.NumRetries != 3 {
		b.Fatalf("timeout %v retries %d", f.timeout, f.rp.NumRetries)
	}
}

// envoyCB is a stream's callbacks as far as the override check goes.
type envoyCB struct {
	httpfilter.DecoderCallbacks
	envoy bool
}

func (c *envoyCB) EnvoyHeaders() bool { return c.envoy }

// BenchmarkOverridesAbsent measures what DecodeHeaders adds for a request
// without override headers on a route without grpc_timeout_header_max:
// the stream's EnvoyHeaders call.
func BenchmarkOverridesAbsent(b *testing.B) {
	f := &filter{cb: &envoyCB{}, route: testRoute(15*time.Second, nil)}
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		if envoy := f.overridesPresent(); envoy || f.route.grpcTimeout {
			n++
		}
	}
	if n != 0 {
		b.Fatal("overrides seen")
	}
}
