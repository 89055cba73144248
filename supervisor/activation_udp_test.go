package supervisor_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/quic-go/quic-go/http3"
	"golang.org/x/sys/unix"
)

// udpSockets counts the UDP sockets bound to port.
func udpSockets(t *testing.T, port int) int {
	t.Helper()
	return socketsOnPort(t, port, "", "/proc/net/udp", "/proc/net/udp6")
}

func TestAdoptsUDPSocketPassedBySystemd(t *testing.T) {
	t.Parallel()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(t.Context(), "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	uc := pc.(*net.UDPConn)
	defer uc.Close()
	addr := uc.LocalAddr().String()
	f, err := uc.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	up := newUpstream(t)
	cert, key := selfSigned(t, t.TempDir())
	text := proxyConfig(up.addr, controlPath(t), "h3")
	text = strings.Replace(text, `address = "127.0.0.1:0"`, fmt.Sprintf("address = %q\nprotocol = \"udp\"", addr), 1)
	text = strings.Replace(text, "  name = \"default\"\n", fmt.Sprintf(`  name = "default"
    [listener.filter_chain.tls]
      [[listener.filter_chain.tls.certificate]]
      cert_file = %q
      key_file = %q
`, cert, key), 1)
	path := writeConfig(t, text)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envActivate+"=1", envActivateBinary+"="+binary, envActivateConfig+"="+path)
	cmd.ExtraFiles = []*os.File{f}
	s := startCmd(t, path, cmd)

	e := s.wait(t, "listening", map[string]any{"listener": "h3"}, nil)
	if e.str("address") != addr || e.str("sockets") != "adopted" {
		t.Fatalf("listening line %v, want address %s from adopted sockets", e, addr)
	}
	// Our copy must not read what the workers should get.
	f.Close()
	uc.Close()

	tr := &http3.Transport{TLSClientConfig: &tls.Config{ServerName: "sluice.test", InsecureSkipVerify: true}}
	defer tr.Close()
	for i := range 4 { // new connections, spread over both workers' sockets
		resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/")
		if err != nil {
			t.Fatalf("HTTP/3 GET %d through the adopted socket: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("HTTP/3 GET %d through the adopted socket: %d %q", i, resp.StatusCode, body)
		}
		tr.CloseIdleConnections()
	}
	// The adopted socket serves one worker; the supervisor binds one more
	// in its SO_REUSEPORT group for the second.
	if n := udpSockets(t, portOf(t, addr)); n != 2 {
		t.Errorf("%d UDP sockets are bound to %s, want 2", n, addr)
	}
}
