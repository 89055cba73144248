package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/registry"
)

func registryErrorf(key, msg string) error { return registry.Errorf(key, "%s", msg) }

func wrapErr(err error) error { return fmt.Errorf("build: %w", err) }

// fullSeed returns the TOML text of the 02_full fuzz seed.
func fullSeed(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/fuzz/FuzzLoad/02_full")
	if err != nil {
		t.Fatal(err)
	}
	_, lit, ok := strings.Cut(string(b), "\n[]byte(")
	if !ok {
		t.Fatal("02_full: not a go test fuzz v1 file")
	}
	s, err := strconv.Unquote(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(lit), ")")))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
