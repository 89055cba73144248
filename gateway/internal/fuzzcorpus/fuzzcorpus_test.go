package fuzzcorpus

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that keeps the errors reported to it.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestSyncWritesThenChecksTheSeeds: with SLUICE_WRITE_CORPUS=1 every seed
// is written in go test's corpus format; without it, a seed with no file
// is reported.
func TestSyncWritesThenChecksTheSeeds(t *testing.T) {
	t.Chdir(t.TempDir())
	seeds := map[string][]byte{"crlf": []byte("a\r\n\x00"), "empty": {}}
	t.Setenv("SLUICE_WRITE_CORPUS", "1")
	r := &recorder{TB: t}
	Sync(r, "FuzzX", seeds)
	if len(r.errs) != 0 {
		t.Fatalf("writing: %v", r.errs)
	}
	got, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzX", "crlf"))
	if err != nil || string(got) != "go test fuzz v1\n[]byte(\"a\\r\\n\\x00\")\n" {
		t.Fatalf("corpus file %q, %v", got, err)
	}

	t.Setenv("SLUICE_WRITE_CORPUS", "")
	seeds["new"] = []byte("x")
	r = &recorder{TB: t}
	Sync(r, "FuzzX", seeds)
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], "new") {
		t.Fatalf("a missing seed reported as %v", r.errs)
	}
}
