package config

import (
	"os"
	"strings"
	"testing"
)

// TestDocsExampleIsValid loads the full example of docs/config.md, with the
// real filter names swapped for this package's test filters of the same
// shape.
func TestDocsExampleIsValid(t *testing.T) {
	b, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "## Full example\n\n```toml\n")
	if !ok {
		t.Fatal("docs/config.md has no full example")
	}
	example, _, ok := strings.Cut(after, "```")
	if !ok {
		t.Fatal("docs/config.md: unterminated example")
	}
	example = strings.NewReplacer(
		"sluice.filters.network.http_connection_manager", "sluice.filters.network.test_hcm",
		"sluice.filters.http.router", "sluice.filters.http.test_router",
	).Replace(example)
	c := parse(t, example)
	if len(c.Listeners) != 1 || len(c.Clusters) != 2 || len(c.RouteConfigs[0].VirtualHosts) != 2 {
		t.Fatalf("unexpected shape: %d listeners, %d clusters", len(c.Listeners), len(c.Clusters))
	}
}
