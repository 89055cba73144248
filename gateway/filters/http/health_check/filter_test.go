package healthcheck

import (
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

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

// region returns a one-slab region whose schema holds the filter's gauge.
func region(t *testing.T) *stats.Region {
	t.Helper()
	schema, err := stats.NewSchema((&Config{}).StatDefs(""))
	if err != nil {
		t.Fatal(err)
	}
	r, err := stats.NewRegion(schema, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// check runs one request for path and returns the local reply status, 0
// if the request passed on.
func check(f *Factory, path string) int {
	cb := &callbacks{}
	fl := f.NewFilter(cb).(httpfilter.DecoderFilter)
	st := fl.DecodeHeaders(&httpfilter.RequestHeaders{Method: []byte("GET"), Path: []byte(path)}, true)
	if cb.reply == nil {
		if st != httpfilter.HeadersContinue {
			return -1
		}
		return 0
	}
	return cb.reply.Status
}

func TestHealthCheckAnswersAndFollowsTheSharedFlag(t *testing.T) {
	r := region(t)
	for _, pass := range []bool{false, true} {
		c := &Config{Path: "/healthz", PassThroughMode: pass}
		built, err := c.Build(&registry.BuildContext{Stats: r.Slab(0)})
		if err != nil {
			t.Fatal(err)
		}
		f := built.(*Factory)
		healthy := 200
		if pass {
			healthy = 0
		}
		if got := check(f, "/healthz?probe=1"); got != healthy {
			t.Errorf("pass_through %v: healthy check = %d, want %d", pass, got, healthy)
		}
		if got := check(f, "/other"); got != 0 {
			t.Errorf("pass_through %v: other path = %d, want passed on", pass, got)
		}
		// The supervisor writes the flag into the worker's slab.
		r.Slab(0).Gauge(FailedGauge).Set(1)
		if got := check(f, "/healthz"); got != 503 {
			t.Errorf("pass_through %v: failed check = %d, want 503", pass, got)
		}
		r.Slab(0).Gauge(FailedGauge).Set(0)
		if got := check(f, "/healthz"); got != healthy {
			t.Errorf("pass_through %v: check after ok = %d, want %d", pass, got, healthy)
		}
	}
}

func TestHealthCheckConfigErrors(t *testing.T) {
	for _, tc := range []struct{ path, err string }{
		{"", "path: required"},
		{"healthz", "must be an absolute path"},
		{"/h?x", "must be an absolute path"},
	} {
		_, err := (&Config{Path: tc.path}).Build(&registry.BuildContext{})
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("path %q: %v, want %q", tc.path, err, tc.err)
		}
	}
}
