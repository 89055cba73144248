package hotrestart

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// pair returns both ends of a control channel, closed at cleanup.
func pair(t *testing.T) (*Conn, *Conn) {
	t.Helper()
	fa, fb, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewConn(fa)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewConn(fb)
	if err != nil {
		t.Fatal(err)
	}
	fa.Close()
	fb.Close()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// listenerFD returns a TCP listener on 127.0.0.1:0 and a duplicate of its fd.
func listenerFD(t *testing.T) (net.Listener, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return ln, int(f.Fd())
}

func sockname(t *testing.T, fd int) string {
	t.Helper()
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname(%d): %v", fd, err)
	}
	a := sa.(*unix.SockaddrInet4)
	return (&net.TCPAddr{IP: a.Addr[:], Port: a.Port}).String()
}

func TestHelloPassesListeningSockets(t *testing.T) {
	a, b := pair(t)
	ln1, fd1 := listenerFD(t)
	ln2, fd2 := listenerFD(t)
	want := Hello{
		ConfigPath: "/etc/sluice/sluice.toml",
		Config:     []byte("[server]\nworkers = 2\n"),
		Slot:       1,
		Generation: 7,
		Listeners:  []ListenerFD{{Name: "public", FD: fd1}, {Name: "admin", FD: fd2}},
	}
	m, err := want.Message()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Send(m); err != nil {
		t.Fatal(err)
	}
	got, err := b.Recv()
	if err != nil {
		t.Fatal(err)
	}
	h, err := DecodeHello(got)
	if err != nil {
		t.Fatal(err)
	}
	if h.ConfigPath != want.ConfigPath || !bytes.Equal(h.Config, want.Config) || h.Slot != 1 || h.Generation != 7 {
		t.Fatalf("hello = %+v, want %+v", h, want)
	}
	if len(h.Listeners) != 2 || h.Listeners[0].Name != "public" || h.Listeners[1].Name != "admin" {
		t.Fatalf("listeners = %+v", h.Listeners)
	}
	for i, ln := range []net.Listener{ln1, ln2} {
		fd := h.Listeners[i].FD
		if fd == fd1 || fd == fd2 {
			t.Fatalf("received fd %d is the sender's own", fd)
		}
		if got := sockname(t, fd); got != ln.Addr().String() {
			t.Errorf("listener %d: received socket bound to %s, want %s", i, got, ln.Addr())
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("listener %d: received fd is not close-on-exec (flags %#x, %v)", i, flags, err)
		}
		unix.Close(fd)
	}
}

func TestSendSplitsManyFDsAndLargeBodies(t *testing.T) {
	a, b := pair(t)
	const n = 2*MaxFDsPerPacket + 17
	var readEnds []*os.File
	var writeFDs []int
	for i := 0; i < n; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); w.Close() })
		readEnds = append(readEnds, r)
		writeFDs = append(writeFDs, int(w.Fd()))
	}
	body := bytes.Repeat([]byte("0123456789abcdef"), 3*maxChunk/16+5)
	const unknown = Type(200)
	if err := a.Send(Message{Type: unknown, Body: body, FDs: writeFDs}); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(Message{Type: TypeReady}); err != nil {
		t.Fatal(err)
	}
	m, err := b.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != unknown || !bytes.Equal(m.Body, body) {
		t.Fatalf("got %s with %d body bytes, want %s with %d", m.Type, len(m.Body), unknown, len(body))
	}
	if len(m.FDs) != n {
		t.Fatalf("got %d fds, want %d", len(m.FDs), n)
	}
	// Each received fd is the write end of the matching pipe.
	for i, fd := range m.FDs {
		msg := []byte{byte(i), byte(i >> 8)}
		if _, err := unix.Write(fd, msg); err != nil {
			t.Fatalf("write through received fd %d: %v", i, err)
		}
		buf := make([]byte, 2)
		if _, err := io.ReadFull(readEnds[i], buf); err != nil || !bytes.Equal(buf, msg) {
			t.Fatalf("pipe %d read %v, %v; want %v", i, buf, err, msg)
		}
	}
	m.CloseFDs()
	if m, err := b.Recv(); err != nil || m.Type != TypeReady || len(m.Body) != 0 || len(m.FDs) != 0 {
		t.Fatalf("second message = %+v, %v; want a bare ready", m, err)
	}
}

func TestSendKeepsEachPacketWithinLimits(t *testing.T) {
	fa, fb, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	defer fb.Close()
	a, err := NewConn(fa)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	fds := make([]int, MaxFDsPerPacket+1)
	for i := range fds {
		fds[i] = int(os.Stdin.Fd())
	}
	if err := a.Send(Message{Type: TypeDrain, FDs: fds}); err != nil {
		t.Fatal(err)
	}
	// Read the raw packets: two, the first with 250 fds and "more" set.
	buf := make([]byte, headerLen+maxChunk)
	oob := make([]byte, unix.CmsgSpace(4*300))
	for i, want := range []int{MaxFDsPerPacket, 1} {
		n, oobn, _, _, err := unix.Recvmsg(int(fb.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(cmsgs) != 1 {
			t.Fatalf("packet %d: %d control messages, %v", i, len(cmsgs), err)
		}
		got, err := unix.ParseUnixRights(&cmsgs[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, fd := range got {
			unix.Close(fd)
		}
		more := buf[2]&flagMore != 0
		if n != headerLen || len(got) != want || int(buf[3]) != want || more != (i == 0) {
			t.Fatalf("packet %d: %d bytes, %d fds (header says %d), more=%v", i, n, len(got), buf[3], more)
		}
	}
}

func TestRecvReturnsEOFWhenPeerCloses(t *testing.T) {
	a, b := pair(t)
	if err := a.Send(Message{Type: TypeStop}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if m, err := b.Recv(); err != nil || m.Type != TypeStop {
		t.Fatalf("got %+v, %v; want stop", m, err)
	}
	if _, err := b.Recv(); err != io.EOF {
		t.Fatalf("Recv after peer close = %v, want io.EOF", err)
	}
}

func TestCloseUnblocksRecv(t *testing.T) {
	_, b := pair(t)
	done := make(chan error)
	go func() {
		_, err := b.Recv()
		done <- err
	}()
	b.Close()
	if err := <-done; err == nil {
		t.Fatal("Recv on a closed Conn returned no error")
	}
}

func TestRecvRejectsMalformedPacketsAndClosesTheirFDs(t *testing.T) {
	fa, fb, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	defer fb.Close()
	b, err := NewConn(fb)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()

	tests := []struct {
		name string
		pkt  []byte
	}{
		{"bad version", []byte{9, 1, 0, 1, 0, 0, 0, 0}},
		{"short", []byte{1, 1, 0}},
		{"wrong length", []byte{1, 1, 0, 1, 0, 0, 0, 5, 'x'}},
		{"wrong fd count", []byte{1, 1, 0, 3, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := unix.SendmsgN(int(fa.Fd()), tt.pkt, unix.UnixRights(int(w.Fd())), nil, 0); err != nil {
				t.Fatal(err)
			}
			_, err := b.Recv()
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("Recv = %v, want ErrProtocol", err)
			}
		})
	}
	// Every passed copy of the write end was closed: once ours goes, the
	// reader sees EOF.
	w.Close()
	if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("pipe read = %d, %v; want EOF (a received fd leaked)", n, err)
	}
}

func TestDecodeHelloRejectsBadIndexes(t *testing.T) {
	_, fd := listenerFD(t)
	dup, err := unix.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	m := Message{Type: TypeHello, Body: []byte(`{"listeners":[{"name":"a","fd":3}]}`), FDs: []int{dup}}
	if _, err := DecodeHello(m); !errors.Is(err, ErrProtocol) {
		t.Fatalf("DecodeHello = %v, want ErrProtocol", err)
	}
	if _, err := unix.FcntlInt(uintptr(dup), unix.F_GETFD, 0); err != unix.EBADF {
		t.Fatalf("fd of a rejected hello still open (%v)", err)
	}
}

func TestUpgradeStatePassesSocketGroupsAndControlSocket(t *testing.T) {
	a, b := pair(t)
	ln1, fd1 := listenerFD(t)
	ln2, fd2 := listenerFD(t)
	ln3, fd3 := listenerFD(t)
	want := UpgradeState{
		Version:        Version,
		PID:            42,
		NextGeneration: 5,
		Draining:       []int{3},
		Groups: []SocketGroup{
			{Name: "public", Key: "127.0.0.1:0 reuse_port=true name=public", Addr: ln1.Addr().String(), FDs: []int{fd1, fd2}},
			{Name: "admin", Key: "127.0.0.1:0 reuse_port=false name=admin", Addr: ln3.Addr().String(), Shared: true, FDs: []int{fd3}},
		},
		ControlPath: "/run/sluice/control.sock",
		ControlFD:   fd3,
	}
	if err := a.Send(want.Message()); err != nil {
		t.Fatal(err)
	}
	m, err := b.Recv()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeUpgradeState(m)
	if err != nil {
		t.Fatal(err)
	}
	defer got.CloseFDs()
	if got.Version != Version || got.PID != 42 || got.NextGeneration != 5 || len(got.Draining) != 1 || got.ControlPath != want.ControlPath {
		t.Fatalf("state = %+v, want %+v", got, want)
	}
	if len(got.Groups) != 2 || got.Groups[0].Name != "public" || got.Groups[1].Key != want.Groups[1].Key || !got.Groups[1].Shared {
		t.Fatalf("groups = %+v", got.Groups)
	}
	for i, ln := range []net.Listener{ln1, ln2} {
		if s := sockname(t, got.Groups[0].FDs[i]); s != ln.Addr().String() {
			t.Errorf("public socket %d bound to %s, want %s", i, s, ln.Addr())
		}
	}
	if s := sockname(t, got.ControlFD); s != ln3.Addr().String() {
		t.Errorf("control socket bound to %s, want %s", s, ln3.Addr())
	}
}

func TestDecodeUpgradeStateRejectsBadIndexes(t *testing.T) {
	_, fd := listenerFD(t)
	dup, err := unix.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	m := Message{Type: TypeUpgradeState, Body: []byte(`{"groups":[{"name":"a"}],"group_fds":[[1]],"control_fd":-1}`), FDs: []int{dup}}
	if _, err := DecodeUpgradeState(m); !errors.Is(err, ErrProtocol) {
		t.Fatalf("DecodeUpgradeState = %v, want ErrProtocol", err)
	}
	if _, err := unix.FcntlInt(uintptr(dup), unix.F_GETFD, 0); err != unix.EBADF {
		t.Fatalf("fd of a rejected state still open (%v)", err)
	}
}

func TestUpgradeHelloCarriesTheLocalVersion(t *testing.T) {
	if LocalVersion() != Version {
		t.Fatalf("LocalVersion() = %d without an override, want %d", LocalVersion(), Version)
	}
	h, err := DecodeUpgradeHello(UpgradeHello{Version: LocalVersion(), PID: 7, Build: "v2"}.Message())
	if err != nil || h.Version != Version || h.PID != 7 || h.Build != "v2" {
		t.Fatalf("hello = %+v, %v", h, err)
	}
	if _, err := DecodeUpgradeReady(UpgradeReady{PID: 7}.Message()); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeUpgradeReady(h.Message()); !errors.Is(err, ErrProtocol) {
		t.Fatalf("DecodeUpgradeReady of a hello = %v, want ErrProtocol", err)
	}
}
