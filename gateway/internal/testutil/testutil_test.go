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
