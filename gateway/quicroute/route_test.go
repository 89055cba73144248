package quicroute

import (
	"bytes"
	"net/netip"
	"testing"
)

func shortPacket(id []byte, payload string) []byte {
	return append(append([]byte{0x40}, id...), payload...)
}

func longPacket(id []byte, payload string) []byte {
	p := []byte{0xc0, 0, 0, 0, 1, byte(len(id))}
	p = append(p, id...)
	p = append(p, 8) // source id length
	p = append(p, "clientid"...)
	return append(p, payload...)
}

func newID(t testing.TB, o Owner) []byte {
	t.Helper()
	id, err := NewGenerator(o).GenerateConnectionID()
	if err != nil {
		t.Fatal(err)
	}
	return id.Bytes()
}

func TestGeneratorIDsNameTheirOwnerAndDiffer(t *testing.T) {
	o := NewOwner(1<<24+77, 1023) // the generation wraps at 2^24
	seen := map[string]bool{}
	for range 1000 {
		id := newID(t, o)
		if len(id) != IDLen {
			t.Fatalf("id length %d, want %d", len(id), IDLen)
		}
		got, ok := ParseID(id)
		if !ok || got != (Owner{Generation: 77, Slot: 1023}) {
			t.Fatalf("ParseID(%x) = %v %v, want generation 77 slot 1023", id, got, ok)
		}
		if seen[string(id[6:])] {
			t.Fatalf("random part %x repeated", id[6:])
		}
		seen[string(id[6:])] = true
	}
}

func TestDecide(t *testing.T) {
	self := NewOwner(5, 1)
	other := NewOwner(4, 1)
	client := []byte("0123456789abcdef") // a client-chosen id: not ours
	cases := []struct {
		name      string
		p         []byte
		successor int64
		forwarded bool
		want      Route
	}{
		{"short, own id", shortPacket(newID(t, self), "x"), -1, false, Route{}},
		{"short, older generation's id", shortPacket(newID(t, other), "x"), -1, false, Route{true, other}},
		{"short, other slot", shortPacket(newID(t, NewOwner(5, 0)), "x"), -1, false, Route{true, NewOwner(5, 0)}},
		{"short, forwarded already", shortPacket(newID(t, other), "x"), -1, true, Route{}},
		{"short, not ours", shortPacket(client[:IDLen], "x"), -1, false, Route{}},
		{"long, other's id", longPacket(newID(t, other), "x"), -1, false, Route{true, other}},
		{"long, new connection, serving", longPacket(client, "x"), -1, false, Route{}},
		{"long, new connection, draining", longPacket(client, "x"), 9, false, Route{true, NewOwner(9, 1)}},
		{"long, new connection, forwarded, draining", longPacket(client, "x"), 9, true, Route{true, NewOwner(9, 1)}},
		{"long, own id, draining", longPacket(newID(t, self), "x"), 9, false, Route{}},
		{"empty", nil, 9, false, Route{}},
		{"truncated short", []byte{0x40, idMarker, 0, 0}, -1, false, Route{}},
		{"truncated long", []byte{0xc0, 0, 0, 0, 1, 20, 1}, 9, false, Route{}},
	}
	for _, c := range cases {
		if got := Decide(self, c.successor, c.p, c.forwarded); got != c.want {
			t.Errorf("%s: Decide = %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestFrameRoundTrip(t *testing.T) {
	for _, a := range []string{"192.0.2.1:443", "[2001:db8::1]:65535"} {
		addr := netip.MustParseAddrPort(a)
		f := appendFrame(nil, addr, []byte{1, 2, 3}, []byte("payload"))
		gotAddr, oob, p, ok := parseFrame(f)
		if !ok || gotAddr != addr || !bytes.Equal(oob, []byte{1, 2, 3}) || string(p) != "payload" {
			t.Errorf("%s: parseFrame = %v %x %q %v", a, gotAddr, oob, p, ok)
		}
	}
}

// FuzzRoute feeds arbitrary datagrams to the routing code and arbitrary
// frames to the forwarding decoder: neither may panic, and a decision to
// forward must name an owner other than the worker itself.
func FuzzRoute(f *testing.F) {
	self := NewOwner(5, 1)
	f.Add(shortPacket(newID(f, NewOwner(4, 1)), "x"), int64(-1), false)
	f.Add(longPacket([]byte("client-chosen-id"), "x"), int64(6), false)
	f.Add(longPacket(newID(f, NewOwner(5, 0)), ""), int64(-1), true)
	f.Add([]byte{0x80}, int64(0), false)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, int64(-1), false)
	f.Add(appendFrame(nil, netip.MustParseAddrPort("[2001:db8::1]:1"), []byte{1}, shortPacket(newID(f, self), "")), int64(-1), false)
	f.Fuzz(func(t *testing.T, p []byte, successor int64, forwarded bool) {
		if successor < -1 {
			successor = -1
		}
		r := Decide(self, successor&genMask|successor>>63, p, forwarded)
		if r.Forward && r.To == self {
			t.Fatalf("forward to self: %x", p)
		}
		if id, _, ok := DestinationID(p); ok {
			ParseID(id)
		}
		if addr, oob, q, ok := parseFrame(p); ok {
			g := appendFrame(nil, addr, oob, q)
			if !bytes.Equal(g, p[:len(g)]) && addr.Addr().Is4() {
				t.Fatalf("frame %x re-encodes as %x", p, g)
			}
		}
	})
}
