package hcm_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	_ "github.com/sluice-proxy/sluice/gateway/filters/http/buffer"
	_ "github.com/sluice-proxy/sluice/gateway/filters/http/grpc_web"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// holdFirstConfig builds a filter that parks the headers and holds the
// first body chunk, then lets everything go from the second chunk on, as
// a check that completes mid-upload (ext_authz) does.
type holdFirstConfig struct{}

func (*holdFirstConfig) Build(*registry.BuildContext) (any, error) {
	return httpfilter.FactoryFunc(func(httpfilter.DecoderCallbacks) any { return &holdFirst{} }), nil
}

type holdFirst struct{ chunks int }

func (f *holdFirst) DecodeHeaders(_ *httpfilter.RequestHeaders, end bool) httpfilter.HeadersStatus {
	if end {
		return httpfilter.HeadersContinue
	}
	return httpfilter.HeadersStopIteration
}
func (f *holdFirst) DecodeData(*buffer.Buffer, bool) httpfilter.DataStatus {
	f.chunks++
	if f.chunks == 1 {
		return httpfilter.DataStopAndBuffer
	}
	return httpfilter.DataContinue
}
func (f *holdFirst) DecodeTrailers(*httpfilter.Headers) httpfilter.TrailersStatus {
	return httpfilter.TrailersContinue
}
func (f *holdFirst) OnDestroy() {}

func init() {
	registry.Register(registry.Info{Name: "sluice.filters.http.test_hold_first", Kind: registry.HTTP, New: func() registry.Config { return &holdFirstConfig{} }})
}

// TestHeldBodyPassedThroughARewritingFilterIsNotOverwritten: held body
// bytes released through a filter that hands on a body of its own storage
// (grpc_web decoding a grpc-web-text body) and held again after it (the
// buffer filter) reach the upstream intact, while the filter goes on
// writing the next chunks into its storage. The chunk sizes leave the
// filter's buffer room for the held bytes to grow in place, as they did
// when the manager kept the filter's storage as its own.
func TestHeldBodyPassedThroughARewritingFilterIsNotOverwritten(t *testing.T) {
	got := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- body
		w.Header().Set("content-type", "application/grpc")
	}))
	t.Cleanup(srv.Close)
	const f = "[[listener.filter_chain.filter.config.http_filter]]\nname = %q\n"
	addr := startChain(t, srv.Listener.Addr().String(),
		fmt.Sprintf(f, "sluice.filters.http.test_hold_first")+fmt.Sprintf(f, "sluice.filters.http.grpc_web")+
			fmt.Sprintf(f, "sluice.filters.http.buffer")+
			"[listener.filter_chain.filter.config.http_filter.config]\nmax_request_bytes = 65536\n")

	// Decoded: 1500 + 1500 bytes held and released together (3000, in a
	// 3072-byte allocation), then chunks of 24 bytes.
	var want []byte
	var req strings.Builder
	req.WriteString("POST /pkg.Svc/M HTTP/1.1\r\nHost: x\r\ncontent-type: application/grpc-web-text\r\ntransfer-encoding: chunked\r\n\r\n")
	for i, n := range []int{1500, 1500, 24, 24, 24, 24} {
		p := bytes.Repeat([]byte{byte('a' + i)}, n)
		want = append(want, p...)
		enc := base64.StdEncoding.EncodeToString(p)
		fmt.Fprintf(&req, "%x\r\n%s\r\n", len(enc), enc)
	}
	req.WriteString("0\r\n\r\n")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	resp.Body.Close()
	select {
	case body := <-got:
		if !bytes.Equal(body, want) {
			i := 0
			for i < len(body) && i < len(want) && body[i] == want[i] {
				i++
			}
			t.Fatalf("upstream got %d bytes differing from the %d sent at byte %d: %q…", len(body), len(want), i, body[i:min(len(body), i+32)])
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the upstream got no request (response %d)", resp.StatusCode)
	}
}
