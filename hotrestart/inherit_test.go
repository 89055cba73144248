package hotrestart

import (
	"bytes"
	"encoding/json"
	"testing"

	"golang.org/x/sys/unix"
)

// memfd returns a new memfd holding b, closed at cleanup.
func memfd(t *testing.T, b []byte) int {
	t.Helper()
	fd, err := unix.MemfdCreate("test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.Write(fd, b); err != nil {
		t.Fatal(err)
	}
	return fd
}

// content reads what the memfd fd holds.
func content(t *testing.T, fd int) []byte {
	t.Helper()
	b := make([]byte, 64)
	n, err := unix.Pread(fd, b, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b[:n]
}

func TestHelloPassesStatsRegionTicketKeysAndPlugins(t *testing.T) {
	a, b := pair(t)
	_, lfd := listenerFD(t)
	h := Hello{Slot: 1, Generation: 2, Listeners: []ListenerFD{{Name: "public", FD: lfd}},
		StatsFD: memfd(t, []byte("region")), StatsSlab: 5, TicketKeys: [][32]byte{{1}, {2}}, LogLevel: "debug",
		Plugins: map[string]json.RawMessage{"apikey": json.RawMessage(`{"pid":7}`)}}
	m, err := h.Message()
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
	g, err := DecodeHello(got)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(g.StatsFD)
	defer unix.Close(g.Listeners[0].FD)
	if string(content(t, g.StatsFD)) != "region" || g.StatsSlab != 5 {
		t.Errorf("stats region %q slab %d, want the region and slab 5", content(t, g.StatsFD), g.StatsSlab)
	}
	if len(g.TicketKeys) != 2 || g.TicketKeys[1][0] != 2 || g.LogLevel != "debug" || !bytes.Equal(g.Plugins["apikey"], []byte(`{"pid":7}`)) {
		t.Errorf("hello = %+v", g)
	}
}

func TestInheritedPassesRegionsAndAdminListener(t *testing.T) {
	a, b := pair(t)
	ln, lfd := listenerFD(t)
	in := Inherited{Regions: []InheritedRegion{{FD: memfd(t, []byte("old")), Used: []int{0, 1}}, {FD: memfd(t, []byte("cur")), Current: true}},
		Epoch: 3, FirstStart: 42, HealthCheckFailed: true, TicketKeys: [][32]byte{{9}}, KeysRotated: 7, AdminFD: lfd, AdminAddr: "127.0.0.1:0"}
	if err := a.Send(in.Message()); err != nil {
		t.Fatal(err)
	}
	m, err := b.Recv()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeInherited(m)
	if err != nil {
		t.Fatal(err)
	}
	defer got.CloseFDs()
	if len(got.Regions) != 2 || string(content(t, got.Regions[0].FD)) != "old" || string(content(t, got.Regions[1].FD)) != "cur" ||
		!got.Regions[1].Current || len(got.Regions[0].Used) != 2 {
		t.Errorf("regions = %+v", got.Regions)
	}
	if sockname(t, got.AdminFD) != ln.Addr().String() || got.AdminAddr != "127.0.0.1:0" {
		t.Errorf("admin listener %s, want %s", sockname(t, got.AdminFD), ln.Addr())
	}
	if got.Epoch != 3 || got.FirstStart != 42 || !got.HealthCheckFailed || got.TicketKeys[0][0] != 9 || got.KeysRotated != 7 {
		t.Errorf("inherited = %+v", got)
	}
}

func TestPluginReattachRoundTrip(t *testing.T) {
	p, err := DecodePluginReattach(PluginReattach{Name: "jwt", Reattach: []byte(`{"pid":1}`)}.Message())
	if err != nil || p.Name != "jwt" || string(p.Reattach) != `{"pid":1}` {
		t.Fatalf("round trip = %+v, %v", p, err)
	}
	if _, err := DecodePluginReattach(PluginReattach{}.Message()); err == nil {
		t.Error("a nameless reattach decoded")
	}
}
