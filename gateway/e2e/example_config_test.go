package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
)

// TestExampleConfigIsValid keeps etc/sluice.toml (what make run serves)
// loadable: every key known, every reference resolved, every file it names
// readable. It lays the example out as make run does — the config and key
// file under etc/, certificates from tools/gencert, the apikey plugin in
// bin/ — and runs sluice validate there.
func TestExampleConfigIsValid(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sluice.toml", "apikeys.txt"} {
		b, err := os.ReadFile(filepath.Join(root, "etc", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "etc", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gen := exec.Command("go", "run", "./tools/gencert", "-dir", filepath.Join(dir, "etc", "certs"))
	gen.Dir = root
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("gencert: %v\n%s", err, out)
	}
	// The apikey plugin, where make build puts it (its path is relative to
	// the config file, and validate checks it is an executable).
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "bin", "apikey"), "./plugins/apikey")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build apikey: %v\n%s", err, out)
	}
	cmd := exec.Command(gwtest.Binary(t), "validate", "-c", "etc/sluice.toml")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("sluice validate etc/sluice.toml: %v: %s", err, out)
	}
}
