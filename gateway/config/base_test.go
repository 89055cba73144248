package config

import (
	"errors"
	"strings"
	"testing"
)

// Pieces of a valid config, concatenated by the tests.
const (
	listenerTOML = `[[listener]]
name = "public"
address = "127.0.0.1:0"
[[listener.filter_chain]]
[[listener.filter_chain.filter]]
name = "sluice.filters.network.test_hcm"
[listener.filter_chain.filter.config]
stat_prefix = "ingress"
route_config = "main"
[[listener.filter_chain.filter.config.http_filter]]
name = "sluice.filters.http.test_cfg"
[listener.filter_chain.filter.config.http_filter.config]
header = "x-a"
[[listener.filter_chain.filter.config.http_filter]]
name = "sluice.filters.http.test_router"
`
	clusterTOML = `[[cluster]]
name = "backend"
endpoints = ["127.0.0.1:8080"]
`
	routeTOML = `[[route_config]]
name = "main"
[[route_config.virtual_host]]
name = "all"
domains = ["*"]
[[route_config.virtual_host.route]]
match = { prefix = "/" }
cluster = "backend"
`
	baseTOML = listenerTOML + clusterTOML + routeTOML
)

// parse parses text as file t.toml and fails the test on error.
func parse(t *testing.T, text string) *Config {
	t.Helper()
	c, err := Parse("t.toml", []byte(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

// parseErr parses text as file t.toml and checks that it fails with an
// error containing want, made of *Error values.
func parseErr(t *testing.T, text, want string) error {
	t.Helper()
	c, err := Parse("t.toml", []byte(text))
	if err == nil {
		t.Fatalf("Parse succeeded (%d listeners), want error containing %q", len(c.Listeners), want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("Parse error:\n%v\nwant it to contain %q", err, want)
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("Parse error %T is not a *config.Error: %v", err, err)
	}
	return err
}

func TestBaseIsValid(t *testing.T) {
	c := parse(t, baseTOML)
	if len(c.Listeners) != 1 || len(c.Clusters) != 1 || len(c.RouteConfigs) != 1 {
		t.Fatalf("got %d listeners, %d clusters, %d route configs", len(c.Listeners), len(c.Clusters), len(c.RouteConfigs))
	}
}
