package e2e

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
	"golang.org/x/net/http2"
)

// TestHTTP2StreamsBeyondMaxConcurrentStreamsQueueOnOneConnection sends 24
// streams over one connection to a listener that allows 4 at a time: every
// stream completes (the proxy frees a stream's slot when its response
// ends) and the upstream never sees more than 4 at once.
//
// The client is one http2.ClientConn, which waits for a free slot before
// opening a stream. An http.Client over http2.Transport with
// StrictMaxConcurrentStreams cannot be used: requests that reserved a slot
// in its connection pool and wait for the connection's header lock count
// as open streams, so with more waiting requests than the limit no request
// is ever sent (golang/go#70809).
func TestHTTP2StreamsBeyondMaxConcurrentStreamsQueueOnOneConnection(t *testing.T) {
	const streams, limit = 24, 4
	var inFlight, peak atomic.Int64
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for {
			old := peak.Load()
			if n <= old || peak.CompareAndSwap(old, n) {
				break
			}
		}
		io.WriteString(w, r.URL.Path)
		inFlight.Add(-1)
	}))
	p := gwtest.Start(t, h2Config(fmt.Sprintf("    http2_protocol_options = { max_concurrent_streams = %d }", limit),
		route(`prefix = "/"`, "up"), cluster("up", up.Addr)))
	tr := &http2.Transport{AllowHTTP: true, StrictMaxConcurrentStreams: true}
	cc, err := tr.NewClientConn(dial(t, p.Addr("http")))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	roundTrip := func(path string) error {
		req, _ := http.NewRequest("GET", "http://"+p.Addr("http")+path, nil)
		resp, err := cc.RoundTrip(req)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != path {
			return fmt.Errorf("%s: got %q, %v", path, b, err)
		}
		return nil
	}
	if err := roundTrip("/warm"); err != nil { // the server's SETTINGS are known
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := roundTrip(fmt.Sprintf("/s%d", i)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if st := cc.State(); st.Closed || st.StreamsActive != 0 {
		t.Fatalf("connection state after the streams: %+v, want open with no stream", st)
	}
	if peak.Load() > limit {
		t.Fatalf("%d requests at once upstream, max_concurrent_streams is %d", peak.Load(), limit)
	}
}

func h2specPath(t *testing.T) string {
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "h2spec")
	if _, err := os.Stat(p); err != nil {
		t.Fatal("h2spec is required: go install github.com/summerwind/h2spec/cmd/h2spec@latest")
	}
	return p
}

// h2specKnownFailures are the h2spec cases sluice fails, each with the
// reason it cannot pass: none. Any failure fails the test, and so does a
// listed case that passes (the list must be kept exact).
var h2specKnownFailures = map[string]string{}

// h2specAutoFailures are the further known failures on a plaintext listener
// with codec_type auto: bytes that are not the h2c preface are an HTTP/1
// request there, and a malformed one gets an HTTP/1 400 (as in Envoy). A
// codec_type http2 listener passes the case (see the preface subtest).
var h2specAutoFailures = map[string]string{
	"http2/3.5 Sends invalid connection preface": "codec auto: not the preface means HTTP/1",
}

func TestH2specConformance(t *testing.T) {
	bin := h2specPath(t)
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "127.0.0.1")
	plain := gwtest.Start(t, simpleConfig(1, up.Addr))
	h2only := gwtest.Start(t, h2Config(`    codec_type = "http2"`, route(`prefix = "/"`, "up"), cluster("up", up.Addr)))
	secure := gwtest.Start(t, tlsListenerConfig(fmt.Sprintf("  [[listener.filter_chain.tls.certificate]]\n  cert_file = %q\n  key_file = %q\n", cert, key),
		cluster("up", up.Addr)))
	for _, tc := range []struct {
		name  string
		addr  string
		args  []string
		known []map[string]string
	}{
		{"h2c", plain.Addr("http"), nil, []map[string]string{h2specKnownFailures, h2specAutoFailures}},
		{"tls", secure.Addr("https"), []string{"-t", "-k"}, []map[string]string{h2specKnownFailures}},
		{"preface", h2only.Addr("http"), []string{"http2/3.5"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, port, _ := net.SplitHostPort(tc.addr)
			report := filepath.Join(t.TempDir(), "report.xml")
			args := append([]string{"-h", host, "-p", port, "-o", "5", "-j", report}, tc.args...)
			out, runErr := exec.Command(bin, args...).CombinedOutput()
			failed, total, err := h2specFailures(report)
			if err != nil {
				t.Fatalf("h2spec %s: %v (run: %v)\n%s", tc.name, err, runErr, out)
			}
			if total == 0 {
				t.Fatalf("h2spec %s ran no test case\n%s", tc.name, out)
			}
			known := map[string]bool{}
			for _, m := range tc.known {
				for k := range m {
					known[k] = true
				}
			}
			for _, f := range failed {
				if !known[f] {
					t.Errorf("h2spec %s: unexpected failure %q", tc.name, f)
				}
				delete(known, f)
			}
			for k := range known {
				t.Errorf("h2spec %s: %q passes now: remove it from the known failures", tc.name, k)
			}
			if t.Failed() {
				t.Logf("h2spec output:\n%s", failures(out))
			}
		})
	}
}

// h2specFailures reads an h2spec JUnit report: the failed cases, named
// "<section> <description>", and the number of cases run.
func h2specFailures(path string) (failed []string, total int, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	var r struct {
		Suites []struct {
			Cases []struct {
				Package string    `xml:"package,attr"`
				Name    string    `xml:"classname,attr"`
				Error   *struct{} `xml:"error"`
				Failure *struct{} `xml:"failure"`
				Skipped *struct{} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &r); err != nil {
		return nil, 0, err
	}
	for _, s := range r.Suites {
		for _, c := range s.Cases {
			total++
			if c.Error != nil || c.Failure != nil {
				failed = append(failed, c.Package+" "+c.Name)
			}
		}
	}
	return failed, total, nil
}

// failures keeps h2spec's failure summary.
func failures(out []byte) string {
	if i := bytes.Index(out, []byte("Failures:")); i >= 0 {
		return string(out[i:])
	}
	return string(out)
}
