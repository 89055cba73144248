package http1

import "testing"

// naiveValidValue is the byte-at-a-time definition validValue must match.
func naiveValidValue(b []byte) bool {
	for _, c := range b {
		if c != '\t' && (c < 0x20 || c == 0x7f) {
			return false
		}
	}
	return true
}

func TestValidValueMatchesDefinition(t *testing.T) {
	for n := 0; n <= 24; n++ {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				b := make([]byte, n)
				for i := range b {
					b[i] = 'a'
				}
				b[pos] = byte(c)
				if got, want := validValue(b), naiveValidValue(b); got != want {
					t.Fatalf("validValue(%q) = %v, want %v", b, got, want)
				}
			}
		}
	}
}

func TestValidHost(t *testing.T) {
	tests := []struct {
		host        string
		requirePort bool
		want        bool
	}{
		{"example.com", false, true},
		{"example.com:8080", false, true},
		{"example.com:", false, true},
		{"[::1]", false, true},
		{"[::1]:443", true, true},
		{"a%2Db", false, true},
		{"example.com", true, false},
		{"example.com:", true, false},
		{"", false, false},
		{":80", false, false},
		{"a%2", false, false},
		{"a%zz", false, false},
		{"[::1", false, false},
		{"[]", false, false},
		{"[::1]x", false, false},
		{"a:b:c", false, false},
		{"user@host", false, false},
		{"a/b", false, false},
		{"a b", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			if got := validHost([]byte(tt.host), tt.requirePort); got != tt.want {
				t.Fatalf("validHost(%q, %v) = %v, want %v", tt.host, tt.requirePort, got, tt.want)
			}
		})
	}
}
