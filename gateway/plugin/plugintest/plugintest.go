// Package plugintest helps tests run real plugin executables: it builds a
// plugin's main package into the test's temporary directory and launches
// it, registering it in plugin.Default as a worker would.
package plugintest

import (
	"context"
	"os/exec"
	"path"
	"path/filepath"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/plugin"
)

// Build compiles the main package pkg (an import path) into t.TempDir and
// returns the executable's path.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), path.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// Launch starts the plugin of cfg, records it in plugin.Default under
// cfg.Name and kills it when the test ends.
func Launch(t testing.TB, cfg plugin.Config) *plugin.Process {
	t.Helper()
	p, err := plugin.Launch(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	plugin.Default.Set(cfg.Name, p.Reattach())
	t.Cleanup(func() {
		p.Kill()
		plugin.Default.Delete(cfg.Name)
	})
	return p
}

// Supervise runs plugin.Supervise for cfg until the test ends, recording
// each new process in plugin.Default and sending its Reattach info on the
// returned channel (buffered): receive from it to wait for a launch.
func Supervise(t testing.TB, cfg plugin.Config) <-chan plugin.Reattach {
	t.Helper()
	ch := make(chan plugin.Reattach, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = plugin.Supervise(ctx, cfg, nil, func(ra plugin.Reattach) {
			plugin.Default.Set(cfg.Name, ra)
			ch <- ra
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		plugin.Default.Delete(cfg.Name)
	})
	return ch
}
