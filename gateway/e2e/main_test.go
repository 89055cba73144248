// Package e2e holds sluice's end-to-end tests: they run the real sluice
// binary (built once by TestMain) in front of loopback upstreams and talk to
// it with real clients and raw TCP.
package e2e

import (
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
)

func TestMain(m *testing.M) { gwtest.Main(m) }
