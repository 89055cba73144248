package supervisor_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a certificate for sluice.test and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sluice.test"},
		DNSNames:     []string{"sluice.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// tlsGet sends GET / over a new TLS connection to addr with cfg, and
// returns whether the session was resumed and the pid of the worker that
// served the connection.
func tlsGet(t *testing.T, addr string, cfg *tls.Config, workers map[int]int) (bool, int) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitTimeout))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: sluice.test\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("TLS GET: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("TLS GET: status %d", resp.StatusCode)
	}
	return c.ConnectionState().DidResume, servingPID(t, c.LocalAddr().String(), c.RemoteAddr().String(), workers)
}

// servingPID returns which of pids holds the server side of the TCP
// connection from local to remote (0 if none does), from /proc.
func servingPID(t *testing.T, local, remote string, pids map[int]int) int {
	t.Helper()
	hexAddr := func(a string) string {
		ta, err := net.ResolveTCPAddr("tcp", a)
		if err != nil {
			t.Fatal(err)
		}
		ip := ta.IP.To4()
		return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ta.Port)
	}
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	inode := ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 9 && f[1] == hexAddr(remote) && f[2] == hexAddr(local) {
			inode = f[9]
		}
	}
	for _, pid := range pids {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); l == "socket:["+inode+"]" {
				return pid
			}
		}
	}
	return 0
}

func TestTLSSessionsResumeAcrossWorkersReloadAndUpgrade(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	ctl := controlPath(t)
	cert, key := selfSigned(t, t.TempDir())
	text := obsConfig(up.addr, ctl, obsOptions{tls: fmt.Sprintf(`
    [listener.filter_chain.tls]
    alpn = ["http/1.1"]
      [[listener.filter_chain.tls.certificate]]
      cert_file = %q
      key_file = %q
`, cert, key)})
	s := start(t, text)
	addr := s.listenAddr(t, "public")
	pids := s.workers(t)
	cfg := &tls.Config{ServerName: "sluice.test", InsecureSkipVerify: true, NextProtos: []string{"http/1.1"},
		ClientSessionCache: tls.NewLRUClientSessionCache(8)}

	resumed, first := tlsGet(t, addr, cfg, pids)
	if resumed || first == 0 {
		t.Fatalf("first connection: resumed %v, served by pid %d", resumed, first)
	}
	// New connections spread over both workers (SO_REUSEPORT): every one
	// resumes, including those served by the worker that did not issue the
	// ticket.
	other := false
	for i := 0; i < 64 && !other; i++ {
		resumed, pid := tlsGet(t, addr, cfg, pids)
		if !resumed {
			t.Fatalf("connection %d (worker pid %d) did not resume", i, pid)
		}
		other = pid != first && pid != 0
	}
	if !other {
		t.Fatal("no connection landed on the other worker")
	}

	if out, code := runSluice(t, "reload", "-c", s.path); code != 0 {
		t.Fatalf("reload: %d %s", code, out)
	}
	s.wait(t, "generation drained", map[string]any{"generation": 1}, nil)
	if resumed, _ := tlsGet(t, addr, cfg, nil); !resumed {
		t.Error("no resumption after a reload")
	}
	if out, code, _ := upgrade(t, ctl); code != 0 {
		t.Fatalf("upgrade: %d %s", code, out)
	}
	s.wait(t, "exiting", nil, nil) // the old supervisor, once its workers are gone
	if resumed, _ := tlsGet(t, addr, cfg, nil); !resumed {
		t.Error("no resumption after an upgrade")
	}
}

// TestRotatedTicketKeysReachRunningWorkers checks that a running worker
// encrypts tickets with the newest key after rotations: with one worker and
// ticket_key_rotation = "700ms", after three rotations (so the worker's
// starting key is no longer kept) a ticket it issues still resumes on its
// replacement, which starts with the supervisor's current keys.
func TestRotatedTicketKeysReachRunningWorkers(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	cert, key := selfSigned(t, t.TempDir())
	text := obsConfig(up.addr, controlPath(t), obsOptions{tls: fmt.Sprintf(`
    [listener.filter_chain.tls]
    alpn = ["http/1.1"]
      [[listener.filter_chain.tls.certificate]]
      cert_file = %q
      key_file = %q
`, cert, key)})
	text = strings.Replace(text, "workers = 2\n", "workers = 1\nticket_key_rotation = \"700ms\"\n", 1)
	s := start(t, text)
	addr := s.listenAddr(t, "public")
	pids := map[int]int{0: s.wait(t, "worker ready", map[string]any{"slot": 0}, nil).int(t, "pid")}
	s.wait(t, "TLS ticket keys updated", map[string]any{"pid": pids[0]}, func(entry) bool {
		return s.count("TLS ticket keys updated", nil) >= 3
	})

	cfg := &tls.Config{ServerName: "sluice.test", InsecureSkipVerify: true, NextProtos: []string{"http/1.1"},
		ClientSessionCache: tls.NewLRUClientSessionCache(8)}
	if resumed, _ := tlsGet(t, addr, cfg, pids); resumed {
		t.Fatal("the first connection resumed a session")
	}
	p, err := os.FindProcess(pids[0])
	if err != nil {
		t.Fatal(err)
	}
	p.Kill()
	s.wait(t, "worker ready", map[string]any{"slot": 0}, func(e entry) bool { return e.int(t, "pid") != pids[0] })
	if resumed, _ := tlsGet(t, addr, cfg, nil); !resumed {
		t.Fatal("a ticket issued after three rotations did not resume on the restarted worker")
	}
}
