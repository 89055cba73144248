// Package fuzzcorpus keeps a fuzz target's committed seed corpus in step
// with the seeds its test file builds in code.
//
// A package's TestWriteCorpus calls Sync with its seeds: a normal run fails
// when a seed is missing from testdata/fuzz/<target>, and a run with
// SLUICE_WRITE_CORPUS=1 writes them there first, in go test's corpus file
// format, so that `go test -fuzz` starts from them and plain `go test`
// replays them.
package fuzzcorpus

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Sync checks (and with SLUICE_WRITE_CORPUS=1 first writes) each seed as
// testdata/fuzz/<target>/<name>, relative to the test's package directory,
// for a fuzz target that takes one []byte.
func Sync(t testing.TB, target string, seeds map[string][]byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	if os.Getenv("SLUICE_WRITE_CORPUS") == "1" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%+q)\n", b)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name := range seeds {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("corpus seed missing (run with SLUICE_WRITE_CORPUS=1): %v", err)
		}
	}
}
