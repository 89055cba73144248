package supervisor_test

import "testing"

func TestWorkersStartAfterFirstHealthChecks(t *testing.T) {
	t.Parallel()
	good, bad := newFakeHost(t), newFakeHost(t)
	bad.healthy.Store(false)
	// A long interval: the first checks are the only ones during the test,
	// so without warming the workers would start with both hosts failed and
	// pending and serve both in panic mode.
	s := start(t, resilienceConfig(controlPath(t), []string{good.addr, bad.addr}, `
  [[cluster.health_check]]
  type = "http"
  interval = "60s"
  no_traffic_interval = "60s"
  timeout = "2s"
  unhealthy_threshold = 1
  healthy_threshold = 1
  http = { path = "/healthz" }
`, ""))
	addr := s.listenAddr(t, "public")
	s.wait(t, "ready", nil, nil)
	s.wait(t, "health checks warmed", nil, nil)
	for range 20 {
		if code, body := get(t, addr, "/"); code != 200 || body != "from "+good.addr {
			t.Fatalf("GET / = %d %q, want 200 from the host that passed its first check %s", code, body, good.addr)
		}
	}
	if n := bad.served.Load(); n != 0 {
		t.Fatalf("the host that failed its first check got %d requests (panic mode)", n)
	}
	if good.checks.Load() != 1 || bad.checks.Load() != 1 {
		t.Errorf("checks: %d and %d, want 1 each", good.checks.Load(), bad.checks.Load())
	}
}
