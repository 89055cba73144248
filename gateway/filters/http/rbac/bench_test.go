package rbac

import (
	"testing"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

// benchPolicies is an edge operator's table: the admin API from the
// office only, writes with a token, reads from anyone not blocked.
const benchPolicies = `
[[policy]]
name = "admin-from-office"
permissions = [{ url_path = { prefix = "/admin" } }]
principals = [{ remote_ip = ["192.0.2.0/24", "2001:db8::/32"] }]
[[policy]]
name = "writes-with-token"
permissions = [{ methods = ["POST", "PUT", "DELETE"] }]
principals = [{ and_ids = [{ header = { name = "authorization", prefix = "Bearer " } }, { not_id = { remote_ip = ["203.0.113.0/24"] } }] }]
[[policy]]
name = "reads"
permissions = [{ and_rules = [{ methods = ["GET", "HEAD"] }, { not_rule = { url_path = { regex = "/internal/.*" } } }] }]
principals = [{ not_id = { remote_ip = ["203.0.113.0/24"] } }]
`

// benchRequest is a read allowed by the third policy, after the first
// two were tried: every kind of matcher but the certificate runs.
func benchRequest() (*httpfilter.RequestHeaders, *callbacks) {
	h, info := req("GET", "/api/items?id=7", "user-agent", "bench", "accept", "*/*",
		"authorization", "Bearer abc", "x-forwarded-for", "198.51.100.7, 10.0.0.1")
	return h, &callbacks{info: *info}
}

// TestAllowPathDoesNotAllocate: a stream's filter, from NewFilter to
// OnDestroy, allocates nothing on a request the policies allow.
func TestAllowPathDoesNotAllocate(t *testing.T) {
	f := build(t, benchPolicies)
	h, cb := benchRequest()
	n := testing.AllocsPerRun(1000, func() {
		fl := f.NewFilter(cb).(httpfilter.DecoderFilter)
		if fl.DecodeHeaders(h, true) != httpfilter.HeadersContinue {
			t.Fatalf("denied: %+v", cb.reply)
		}
		fl.OnDestroy()
	})
	if n != 0 {
		t.Errorf("%v allocations per allowed request, want 0", n)
	}
}

// BenchmarkAllowedRequest measures one allowed request through the
// filter (three policies tried).
//
//	go test -run '^$' -bench . -benchmem ./gateway/filters/http/rbac/
func BenchmarkAllowedRequest(b *testing.B) {
	f := build(b, benchPolicies)
	h, cb := benchRequest()
	b.ReportAllocs()
	for b.Loop() {
		fl := f.NewFilter(cb).(httpfilter.DecoderFilter)
		if fl.DecodeHeaders(h, true) != httpfilter.HeadersContinue {
			b.Fatalf("denied: %+v", cb.reply)
		}
		fl.OnDestroy()
	}
}

// BenchmarkDeniedRequest measures a request the policies deny, reply
// included.
func BenchmarkDeniedRequest(b *testing.B) {
	f := build(b, benchPolicies)
	h, cb := benchRequest()
	h.Fields[3].Value = []byte("203.0.113.5")
	b.ReportAllocs()
	for b.Loop() {
		fl := f.NewFilter(cb).(httpfilter.DecoderFilter)
		if fl.DecodeHeaders(h, true) != httpfilter.HeadersStopIteration {
			b.Fatal("allowed")
		}
		fl.OnDestroy()
	}
}
