package supervisor_test

import (
	"testing"
	"time"
)

// TestUnexpectedHealthCheckStatusFailsHostAtOnce checks Envoy's rule for
// HTTP health checks: unhealthy_threshold counts network failures only; a
// host answering with a status outside expected_statuses is failed by that
// one answer (and gets no more traffic).
func TestUnexpectedHealthCheckStatusFailsHostAtOnce(t *testing.T) {
	t.Parallel()
	a, b := newFakeHost(t), newFakeHost(t)
	s := start(t, resilienceConfig(controlPath(t), []string{a.addr, b.addr}, `
  [[cluster.health_check]]
  type = "http"
  interval = "50ms"
  no_traffic_interval = "50ms"
  timeout = "1s"
  unhealthy_threshold = 1000000
  healthy_threshold = 1
  http = { path = "/healthz" }
`, ""))
	addr := s.listenAddr(t, "public")
	s.wait(t, "health check changed host", map[string]any{"host": a.addr, "healthy": true}, nil)
	s.wait(t, "health check changed host", map[string]any{"host": b.addr, "healthy": true}, nil)
	s.wait(t, "ready", nil, nil)
	a.healthy.Store(false) // /healthz answers 503 from now on
	s.wait(t, "health check changed host", map[string]any{"host": a.addr, "healthy": false}, nil)
	before := a.served.Load()
	for range 10 {
		if code, body := get(t, addr, "/"); code != 200 || body != "from "+b.addr {
			t.Fatalf("GET / = %d %q, want 200 from the healthy host %s", code, body, b.addr)
		}
	}
	if n := a.served.Load() - before; n != 0 {
		t.Fatalf("the host failed by its health check got %d requests", n)
	}
}

// TestMembershipHealthyCountsHealthyHosts checks that the cluster gauge
// membership_healthy counts the hosts that may take traffic (not failed by
// health checking or ejected), as in Envoy, next to membership_total.
func TestMembershipHealthyCountsHealthyHosts(t *testing.T) {
	t.Parallel()
	good, bad := newFakeHost(t), newFakeHost(t)
	bad.healthy.Store(false)
	s := start(t, resilienceConfig(controlPath(t), []string{good.addr, bad.addr}, `
  [[cluster.health_check]]
  type = "http"
  interval = "50ms"
  no_traffic_interval = "50ms"
  timeout = "1s"
  unhealthy_threshold = 1
  healthy_threshold = 1
  http = { path = "/healthz" }
`, ""))
	admin := s.adminAddr(t)
	s.wait(t, "health check changed host", map[string]any{"host": good.addr, "healthy": true}, nil)
	s.wait(t, "ready", nil, nil)
	check := func(total, healthy float64) {
		t.Helper()
		c := counters(t, admin)
		if c["cluster.backend.membership_total"] != total || c["cluster.backend.membership_healthy"] != healthy {
			t.Fatalf("membership_total %v, membership_healthy %v; want %v and %v", c["cluster.backend.membership_total"],
				c["cluster.backend.membership_healthy"], total, healthy)
		}
	}
	check(2, 1)
	bad.healthy.Store(true)
	s.wait(t, "health check changed host", map[string]any{"host": bad.addr, "healthy": true}, nil)
	check(2, 2)
}

// TestPassingHealthCheckUnejectsHost checks Envoy's default
// successful_active_health_check_uneject_host: a host ejected by outlier
// detection is brought back by its next passing active health check rather
// than after base_ejection_time, and stays ejected when the option is
// false.
func TestPassingHealthCheckUnejectsHost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		option  string
		uneject bool
	}{{"default", "", true}, {"disabled", "successful_active_health_check_uneject_host = false\n", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			good, bad := newFakeHost(t), newFakeHost(t)
			bad.status.Store(503) // its data path fails, its /healthz passes
			s := start(t, resilienceConfig(controlPath(t), []string{good.addr, bad.addr}, `
  [[cluster.health_check]]
  type = "http"
  interval = "50ms"
  no_traffic_interval = "50ms"
  timeout = "1s"
  unhealthy_threshold = 1
  healthy_threshold = 1
  http = { path = "/healthz" }

  [cluster.outlier_detection]
  consecutive_5xx = 2
  max_ejection_percent = 50
  base_ejection_time = "300s"
  max_ejection_time = "300s"
  `+tc.option, `    retry_policy = { retry_on = ["5xx"], num_retries = 1, retry_host_predicate = ["previous_hosts"] }
`))
			addr := s.listenAddr(t, "public")
			s.wait(t, "health check changed host", map[string]any{"host": bad.addr, "healthy": true}, nil)
			s.wait(t, "ready", nil, nil)
			for range 8 {
				if code, _ := get(t, addr, "/"); code != 200 {
					t.Fatalf("GET / = %d, want 200 (a 503 retried on the good host)", code)
				}
			}
			s.wait(t, "outlier ejected host", map[string]any{"host": bad.addr}, nil)
			if !tc.uneject {
				if n := s.count("health check unejected host", nil); n != 0 {
					t.Fatalf("%d unejections with successful_active_health_check_uneject_host = false", n)
				}
				checks := bad.checks.Load()
				for end := time.Now().Add(waitTimeout); bad.checks.Load() < checks+5; {
					if time.Now().After(end) {
						t.Fatal("the ejected host is no longer health-checked")
					}
					time.Sleep(10 * time.Millisecond)
				}
				if n := s.count("health check unejected host", nil); n != 0 {
					t.Fatalf("a passing health check brought back the ejected host with the option false")
				}
				return
			}
			s.wait(t, "health check unejected host", map[string]any{"host": bad.addr}, nil)
			// Back in rotation: it serves again (and is ejected again).
			before := bad.served.Load()
			for end := time.Now().Add(waitTimeout); bad.served.Load() == before; {
				if time.Now().After(end) {
					t.Fatal("the unejected host got no request")
				}
				get(t, addr, "/")
			}
		})
	}
}
