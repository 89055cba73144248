package supervisor_test

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestStatsdReceivesCounters(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	up := newUpstream(t)
	s := start(t, obsConfig(up.addr, controlPath(t), obsOptions{statsd: pc.LocalAddr().String()}))
	addr := s.listenAddr(t, "public")
	s.workers(t)
	const n = 17
	for range n {
		if code, _ := get(t, addr, "/"); code != 200 {
			t.Fatalf("GET / = %d", code)
		}
	}
	// Counters arrive as deltas; their sum reaches the requests sent.
	sums := map[string]int{}
	buf := make([]byte, 64<<10)
	deadline := time.Now().Add(waitTimeout)
	for sums["sluice.http.ingress.downstream_rq_total"] < n || sums["sluice.cluster.backend.upstream_rq_2xx"] < n {
		pc.SetReadDeadline(deadline)
		k, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("statsd: %v; sums so far %v", err, sums)
		}
		for _, line := range strings.Split(string(buf[:k]), "\n") {
			name, rest, ok := strings.Cut(line, ":")
			v, typ, ok2 := strings.Cut(rest, "|")
			if !ok || !ok2 || typ != "c" {
				continue
			}
			x, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("statsd line %q: %v", line, err)
			}
			sums[name] += x
		}
	}
	if got := sums["sluice.http.ingress.downstream_rq_total"]; got != n {
		t.Errorf("statsd downstream_rq_total sums to %d, want %d", got, n)
	}
}

// TestStatsdOverTCPCluster checks statsd's tcp_cluster_name: newline-
// terminated lines on one TCP connection to the cluster's host, whose
// counter deltas sum to the requests sent, and a new connection (losing
// nothing) after the statsd server drops the first one.
func TestStatsdOverTCPCluster(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lines := make(chan string, 1024)
	conns := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			go func() {
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					lines <- sc.Text()
				}
			}()
		}
	}()
	up := newUpstream(t)
	s := start(t, obsConfig(up.addr, controlPath(t), obsOptions{statsdTCP: ln.Addr().String()}))
	addr := s.listenAddr(t, "public")
	s.workers(t)
	sums := map[string]int{}
	// want waits until the downstream_rq_total deltas sum to n.
	want := func(n int) {
		t.Helper()
		deadline := time.After(waitTimeout)
		for sums["sluice.http.ingress.downstream_rq_total"] < n {
			select {
			case line := <-lines:
				name, rest, ok := strings.Cut(line, ":")
				v, typ, ok2 := strings.Cut(rest, "|")
				if !ok || !ok2 {
					t.Fatalf("malformed statsd line %q", line)
				}
				if typ == "c" {
					x, err := strconv.Atoi(v)
					if err != nil {
						t.Fatalf("statsd line %q: %v", line, err)
					}
					sums[name] += x
				}
			case <-deadline:
				t.Fatalf("statsd sums %v, want downstream_rq_total %d", sums, n)
			}
		}
		if got := sums["sluice.http.ingress.downstream_rq_total"]; got != n {
			t.Fatalf("statsd downstream_rq_total sums to %d, want %d", got, n)
		}
	}
	for range 11 {
		get(t, addr, "/")
	}
	want(11)
	// The server drops the connection: the sink dials again, and what
	// could not be sent meanwhile arrives with the next flush.
	(<-conns).Close()
	for range 5 {
		get(t, addr, "/")
	}
	want(16)
	select {
	case <-conns:
	default:
		t.Fatal("the sink did not open a second connection")
	}
}

func TestReopenLogsAfterRotation(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	s := start(t, obsConfig(up.addr, controlPath(t), obsOptions{accessLog: logPath}))
	addr := s.listenAddr(t, "public")
	admin := s.adminAddr(t)
	s.workers(t)

	get(t, addr, "/before")
	waitLine(t, logPath, "/before 200")
	rotated := filepath.Join(dir, "access.log.1")
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	// The three ways to reopen: the control socket, SIGUSR1, the admin API.
	for i, reopen := range []func(){
		func() {
			if out, code := runSluice(t, "reopen-logs", "-c", s.path); code != 0 {
				t.Fatalf("sluice reopen-logs: %d %s", code, out)
			}
		},
		func() { s.cmd.Process.Signal(syscallSIGUSR1) },
		func() {
			if code, _ := adminDo(t, "POST", admin, "/reopen_logs"); code != 200 {
				t.Fatalf("POST /reopen_logs = %d", code)
			}
		},
	} {
		reopen()
		s.waitNth(t, "access logs reopened", 2*i+1) // both workers
		path := "/after" + strconv.Itoa(i)
		for range 4 { // new connections: both workers
			get(t, addr, path)
		}
		waitLine(t, logPath, path+" 200")
		if i < 2 {
			os.Rename(logPath, rotated)
		}
	}
	// The file moved away last holds the lines logged before that move.
	if b, _ := os.ReadFile(rotated); !strings.Contains(string(b), "/after1 200") || strings.Contains(string(b), "/after2") {
		t.Errorf("rotated file holds %q, want the /after1 lines only", b)
	}
}

// waitLine waits until the file at path holds a line with want.
func waitLine(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		if f, err := os.Open(path); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if strings.Contains(sc.Text(), want) {
					f.Close()
					return
				}
			}
			f.Close()
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(path)
			t.Fatalf("%s has no line with %q within %v:\n%s", path, want, waitTimeout, b)
		}
		time.Sleep(5 * time.Millisecond) // polling a file written asynchronously
	}
}

// TestStatsdRestartedByAReloadSendsNothingTwice changes [statsd] in a
// reload, which restarts the sink: the new sink sends only what happened
// after it started, so the counter deltas and the histogram's interval
// counts (name.count) each sum to the requests sent, not more.
func TestStatsdRestartedByAReloadSendsNothingTwice(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	up := newUpstream(t)
	cfg := obsConfig(up.addr, controlPath(t), obsOptions{statsd: pc.LocalAddr().String()})
	s := start(t, cfg)
	addr := s.listenAddr(t, "public")
	s.workers(t)
	const total, count = "sluice.http.ingress.downstream_rq_total", "sluice.http.ingress.downstream_rq_time.count"
	sums := map[string]int{}
	buf := make([]byte, 64<<10)
	// until reads datagrams until both sums reach n, then checks that
	// neither went past it.
	until := func(n int, when string) {
		t.Helper()
		deadline := time.Now().Add(waitTimeout)
		for sums[total] < n || sums[count] < n {
			pc.SetReadDeadline(deadline)
			k, _, err := pc.ReadFrom(buf)
			if err != nil {
				t.Fatalf("statsd %s: %v; sums so far %v", when, err, sums)
			}
			for _, line := range strings.Split(string(buf[:k]), "\n") {
				name, rest, ok := strings.Cut(line, ":")
				v, typ, ok2 := strings.Cut(rest, "|")
				if !ok || !ok2 || typ != "c" {
					continue
				}
				x, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("statsd line %q: %v", line, err)
				}
				sums[name] += x
			}
		}
		if sums[total] != n || sums[count] != n {
			t.Fatalf("statsd %s: %s sums to %d and %s to %d, want %d each", when, total, sums[total], count, sums[count], n)
		}
	}
	for range 7 {
		if code, _ := get(t, addr, "/"); code != 200 {
			t.Fatalf("GET / = %d", code)
		}
	}
	until(7, "before the reload")
	s.rewrite(t, strings.Replace(cfg, `flush_interval = "50ms"`, `flush_interval = "60ms"`, 1))
	if out, code := runSluice(t, "reload", "-c", s.path); code != 0 {
		t.Fatalf("sluice reload = %d, %q", code, out)
	}
	for range 5 {
		if code, _ := get(t, addr, "/"); code != 200 {
			t.Fatalf("GET / = %d", code)
		}
	}
	until(12, "after the reload")
}
