package gwtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// BinaryEnv names an environment variable that, when set, is the path of a
// prebuilt sluice binary to use instead of building one.
const BinaryEnv = "SLUICE_BINARY"

// mainPackage is the import path of the sluice binary.
const mainPackage = "github.com/sluice-proxy/sluice"

var (
	// buildDir is set by Main; the binary is built into it on first use.
	buildDir string

	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Main runs the tests of a package that uses Start: it makes the directory
// the binary is built into, runs m, removes the directory and exits with
// m's result. Call it from TestMain. The binary is built only when a test
// first needs it, so listing tests builds nothing.
func Main(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "gwtest: %v\n", err)
		os.Exit(2)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Binary returns the path of the sluice binary, building it on the first
// call (go build -o <dir>/sluice github.com/sluice-proxy/sluice). A failed
// build fails the test with the compiler's output. The SLUICE_BINARY
// environment variable overrides the build.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv(BinaryEnv); p != "" {
			binPath = p
			return
		}
		if buildDir == "" {
			buildErr = fmt.Errorf("gwtest: call gwtest.Main from TestMain")
			return
		}
		binPath = filepath.Join(buildDir, "sluice")
		cmd := exec.Command("go", "build", "-o", binPath, mainPackage)
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("gwtest: go build %s: %v\n%s", mainPackage, err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}
