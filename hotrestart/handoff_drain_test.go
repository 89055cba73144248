package hotrestart

import "testing"

func TestDecodeDrain(t *testing.T) {
	cases := []struct {
		body      []byte
		handoff   bool
		successor int
	}{
		{nil, false, 0},
		{DrainWithHandoff, true, 0},
		{DrainHandoffTo(7), true, 7},
		{DrainHandoffTo(1 << 30), true, 1 << 30},
		{[]byte{0, 0, 0, 0, 9}, false, 0},
		{[]byte{1, 0, 0}, true, 0},
	}
	for _, c := range cases {
		if h, s := DecodeDrain(c.body); h != c.handoff || s != c.successor {
			t.Errorf("DecodeDrain(%x) = %v %d, want %v %d", c.body, h, s, c.handoff, c.successor)
		}
	}
}
