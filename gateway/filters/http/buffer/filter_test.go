package buffer

import (
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/registry"
)

func TestMaxRequestBytesMustBeInRange(t *testing.T) {
	for _, n := range []int64{0, -1, maxRequestBytes + 1} {
		_, err := (&Config{MaxRequestBytes: n}).Build(&registry.BuildContext{})
		if err == nil || !strings.Contains(err.Error(), "max_request_bytes") {
			t.Errorf("max_request_bytes = %d: %v, want an error naming the key", n, err)
		}
	}
	if _, err := (&Config{MaxRequestBytes: 1}).Build(&registry.BuildContext{}); err != nil {
		t.Errorf("max_request_bytes = 1: %v", err)
	}
}
