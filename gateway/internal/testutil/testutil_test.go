package testutil

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
)

func TestDeadAddrRefusesConnections(t *testing.T) {
	_, err := net.Dial("tcp", DeadAddr(t))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial dead address: %v, want connection refused", err)
	}
}

func TestUpstreamCountsConnectionsAndRequests(t *testing.T) {
	s := Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hi")
	}))
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	for i := range 3 {
		resp, err := c.Get(fmt.Sprintf("http://%s/r%d", s.Addr, i))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n := s.ConnCount(); n != 1 {
		t.Errorf("ConnCount %d after 3 keep-alive requests, want 1", n)
	}
	if n := s.RequestCount(); n != 3 {
		t.Errorf("RequestCount %d, want 3", n)
	}
	if got := s.Targets(); len(got) != 3 || got[2] != "/r2" {
		t.Errorf("Targets %q, want [/r0 /r1 /r2]", got)
	}
}

func TestRawUpstreamServesEachConnection(t *testing.T) {
	s := RawUpstream(t, func(c net.Conn) {
		req, err := ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		fmt.Fprintf(c, "HTTP/1.0 200 OK\r\n\r\nraw %s", req.URL.Path)
	})
	resp, err := http.Get("http://" + s.Addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "raw /x" {
		t.Errorf("body %q, want %q", body, "raw /x")
	}
	if n := s.ConnCount(); n != 1 {
		t.Errorf("ConnCount %d, want 1", n)
	}
}

func TestParsePrometheusTextRejectsWhatTheFormatForbids(t *testing.T) {
	good := "# TYPE a counter\na{x=\"q\\\"\\\\\\n\"} 1\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n"
	fams, err := ParsePrometheusText(good)
	if err != nil {
		t.Fatalf("valid exposition: %v", err)
	}
	if v := fams["a"][0].Labels["x"]; v != "q\"\\\n" {
		t.Errorf("label value %q", v)
	}
	for name, bad := range map[string]string{
		"type twice":         "# TYPE a counter\na 1\n# TYPE a counter\n",
		"not contiguous":     "a 1\nb 1\na{x=\"1\"} 1\n",
		"duplicate series":   "a{x=\"1\"} 1\na{x=\"1\"} 2\n",
		"bad name":           "a-b 1\n",
		"bad label":          "a{1x=\"1\"} 1\n",
		"reserved label":     "a{__x=\"1\"} 1\n",
		"bad escape":         "a{x=\"\\t\"} 1\n",
		"no +Inf":            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
		"+Inf is not count":  "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 2\n",
		"decreasing buckets": "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n",
		"bare histogram":     "# TYPE h histogram\nh 1\n",
		"bad value":          "a one\n",
	} {
		if _, err := ParsePrometheusText(bad); err == nil {
			t.Errorf("%s: accepted %q", name, bad)
		}
	}
}
