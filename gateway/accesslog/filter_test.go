package accesslog

import (
	"errors"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// compileTOML decodes a filter table written as TOML and compiles it.
func compileTOML(t *testing.T, src string) (cond, error) {
	t.Helper()
	var f Filter
	md, err := toml.Decode(src, &f)
	if err != nil {
		t.Fatalf("decode %q: %v", src, err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Fatalf("decode %q: undecoded keys %v", src, u)
	}
	return compileFilter(&f, "filter")
}

func TestFilterMatches(t *testing.T) {
	rec := func(code int, d time.Duration, flags httpfilter.ResponseFlags) *Record {
		return &Record{Info: &httpfilter.StreamInfo{ResponseCode: code, ResponseFlags: flags}, Duration: d}
	}
	ok200 := rec(200, 5*time.Millisecond, 0)
	slow200 := rec(200, 1500*time.Millisecond, 0)
	err503 := rec(503, time.Millisecond, httpfilter.FlagNoHealthyUpstream)
	health := rec(200, 0, 0)
	health.Info.HealthCheck = true
	grpcUnavailable := rec(200, 0, 0)
	grpcUnavailable.Info.GRPCStatus, grpcUnavailable.Info.GRPCStatusSet = 14, true
	post := rec(201, 0, 0)
	post.Request = &httpfilter.RequestHeaders{Method: []byte("POST")}
	post.Request.Add("x-debug", "1")
	for _, tc := range []struct {
		filter string
		keep   map[*Record]bool
	}{
		{`status_code_filter = { op = "GE", value = 500 }`, map[*Record]bool{ok200: false, err503: true}},
		{`status_code_filter = { op = "LE", value = 200 }`, map[*Record]bool{ok200: true, err503: false}},
		{`status_code_filter = { op = "EQ", value = 200 }`, map[*Record]bool{ok200: true, err503: false}},
		{`status_code_filter = { op = "NE", value = 200 }`, map[*Record]bool{ok200: false, err503: true}},
		{`duration_filter = { op = "GE", value = 1000 }`, map[*Record]bool{ok200: false, slow200: true}},
		{`not_health_check_filter = {}`, map[*Record]bool{ok200: true, health: false}},
		{`response_flag_filter = {}`, map[*Record]bool{ok200: false, err503: true}},
		{`response_flag_filter = { flags = ["UF", "UH"] }`, map[*Record]bool{ok200: false, err503: true}},
		{`response_flag_filter = { flags = ["UF", "URX"] }`, map[*Record]bool{ok200: false, err503: false}},
		{`grpc_status_filter = { statuses = ["UNAVAILABLE"] }`, map[*Record]bool{grpcUnavailable: true, err503: true, ok200: false}},
		{`grpc_status_filter = { statuses = ["UNAVAILABLE"], exclude = true }`, map[*Record]bool{grpcUnavailable: false, ok200: true}},
		{`grpc_status_filter = { statuses = ["UNKNOWN"] }`, map[*Record]bool{ok200: true, grpcUnavailable: false}},
		{`or_filter = { filters = [ { status_code_filter = { op = "GE", value = 500 } }, { duration_filter = { op = "GE", value = 1000 } } ] }`,
			map[*Record]bool{ok200: false, slow200: true, err503: true}},
		{`header_filter = { header = { name = ":method", exact = "POST" } }`, map[*Record]bool{post: true, ok200: false}},
		{`header_filter = { header = { name = "x-debug", present = true } }`, map[*Record]bool{post: true, ok200: false}},
		{`header_filter = { header = { name = "x-debug", invert = true } }`, map[*Record]bool{post: false, ok200: true}},
		{`and_filter = { filters = [ { status_code_filter = { op = "EQ", value = 200 } }, { not_health_check_filter = {} } ] }`,
			map[*Record]bool{ok200: true, health: false, err503: false}},
	} {
		c, err := compileTOML(t, tc.filter)
		if err != nil {
			t.Fatalf("%s: %v", tc.filter, err)
		}
		for r, want := range tc.keep {
			if got := c.match(r); got != want {
				t.Errorf("%s: record %d (%v, flags %v): kept %v, want %v", tc.filter, r.Info.ResponseCode, r.Duration, r.Info.ResponseFlags, got, want)
			}
		}
	}
}

func TestFilterErrors(t *testing.T) {
	for _, tc := range []struct{ filter, key string }{
		{``, "filter"},
		{`status_code_filter = { op = "GE", value = 500 }
duration_filter = { op = "GE", value = 1 }`, "filter"},
		{`status_code_filter = { op = "GT", value = 500 }`, "filter.status_code_filter.op"},
		{`duration_filter = { op = "GE", value = -1 }`, "filter.duration_filter.value"},
		{`response_flag_filter = { flags = ["UH", "XX"] }`, "filter.response_flag_filter.flags[1]"},
		{`grpc_status_filter = { statuses = [] }`, "filter.grpc_status_filter.statuses"},
		{`grpc_status_filter = { statuses = ["OK", "Cancelled"] }`, "filter.grpc_status_filter.statuses[1]"},
		{`and_filter = { filters = [ { not_health_check_filter = {} } ] }`, "filter.and_filter.filters"},
		{`or_filter = { filters = [ { not_health_check_filter = {} }, { duration_filter = { op = "X" } } ] }`, "filter.or_filter.filters[1].duration_filter.op"},
		{`header_filter = { header = { name = "X-Up" } }`, "filter.header_filter.header.name"},
		{`header_filter = { header = { name = "x", regex = "(" } }`, "filter.header_filter.header.regex"},
		{`header_filter = { header = { name = "x", exact = "a", prefix = "b" } }`, "filter.header_filter.header"},
	} {
		_, err := compileTOML(t, tc.filter)
		var fe *registry.FieldError
		if !errors.As(err, &fe) || fe.Key != tc.key {
			t.Errorf("%q: error %v, want one for key %s", tc.filter, err, tc.key)
		}
	}
}

func TestBuildNamesTheFilterKey(t *testing.T) {
	cfgs := []Config{{Path: "/dev/null"}, {Path: "/dev/null", Filter: &Filter{Duration: &Comparison{Op: "??"}}}}
	_, err := Build(cfgs, nil, true)
	var fe *registry.FieldError
	if !errors.As(err, &fe) || fe.Key != "access_log[1].filter.duration_filter.op" {
		t.Fatalf("Build: %v, want an error for access_log[1].filter.duration_filter.op", err)
	}
}

func BenchmarkFilterRejects(b *testing.B) {
	var f Filter
	if _, err := toml.Decode(`or_filter = { filters = [ { status_code_filter = { op = "GE", value = 500 } }, { duration_filter = { op = "GE", value = 1000 } } ] }`, &f); err != nil {
		b.Fatal(err)
	}
	c, err := compileFilter(&f, "filter")
	if err != nil {
		b.Fatal(err)
	}
	rec := &Record{Info: &httpfilter.StreamInfo{ResponseCode: 200}, Duration: time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		if c.match(rec) {
			b.Fatal("kept")
		}
	}
}
