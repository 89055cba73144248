package supervisor_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// shadowRequest is what a shadow upstream saw of one request.
type shadowRequest struct {
	host, method, path, body string
}

// newShadowHost is an upstream that reports each request on the returned
// channel; /hang requests then block until the test ends.
func newShadowHost(t *testing.T) (addr string, seen <-chan shadowRequest) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan shadowRequest, 16)
	done := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- shadowRequest{host: r.Host, method: r.Method, path: r.URL.Path, body: string(b)}
		if r.URL.Path == "/hang" {
			<-done
		}
		io.WriteString(w, "from the shadow")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { close(done); srv.Close() })
	return ln.Addr().String(), ch
}

func TestRequestMirroringSendsACopyToTheShadowCluster(t *testing.T) {
	t.Parallel()
	main := newFakeHost(t)
	shadowAddr, seen := newShadowHost(t)
	cfg := resilienceConfig(controlPath(t), []string{main.addr}, "",
		`    request_mirror_policies = [{ cluster = "shadow", runtime_fraction = 100 }]
`) + `
[[cluster]]
name = "shadow"
endpoints = ["` + shadowAddr + `"]
`
	s := start(t, cfg)
	addr := s.listenAddr(t, "public")
	s.wait(t, "ready", nil, nil)

	req, err := http.NewRequest("POST", "http://"+addr+"/orders", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "x"
	c := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "from "+main.addr {
		t.Fatalf("POST /orders = %d %q, want 200 from the main host", resp.StatusCode, body)
	}
	select {
	case r := <-seen:
		want := shadowRequest{host: "x-shadow", method: "POST", path: "/orders", body: "hello"}
		if r != want {
			t.Fatalf("the shadow saw %+v, want %+v", r, want)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the shadow cluster never got the mirrored request")
	}

	// A shadow that never answers neither delays nor fails the request.
	if code, body := get(t, addr, "/hang"); code != 200 || body != "from "+main.addr {
		t.Fatalf("GET /hang = %d %q, want 200 from the main host", code, body)
	}
	select {
	case r := <-seen:
		host, _, _ := net.SplitHostPort(r.host)
		if r.path != "/hang" || !strings.HasSuffix(host, "-shadow") {
			t.Fatalf("the shadow saw %+v", r)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the shadow never got /hang")
	}
}
