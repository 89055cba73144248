package hotrestart

import "testing"

// TestSuccessorBodyRoundTrips: a generation (0 withdraws) survives the
// body; a body of another length is refused.
func TestSuccessorBodyRoundTrips(t *testing.T) {
	for _, gen := range []int{0, 1, 7, 1 << 20} {
		if got, err := DecodeSuccessor(SuccessorBody(gen)); err != nil || got != gen {
			t.Fatalf("generation %d: decoded %d, %v", gen, got, err)
		}
	}
	for _, b := range [][]byte{nil, {0, 0, 1}, {0, 0, 0, 1, 0}} {
		if _, err := DecodeSuccessor(b); err == nil {
			t.Fatalf("body %v accepted", b)
		}
	}
	if TypeSuccessor.String() != "successor" {
		t.Fatalf("TypeSuccessor is named %q", TypeSuccessor.String())
	}
}
