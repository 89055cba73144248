package gwtest

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"
)

// Exec runs the sluice binary with args and returns its exit code and its
// combined stdout and stderr. The test fails if the binary cannot be started
// or does not exit within timeout.
func Exec(t testing.TB, timeout time.Duration, args ...string) (code int, output string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, Binary(t), args...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.Env = append(cmd.Environ(), "RUNTIME_DIRECTORY="+shortTempDir(t))
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("gwtest: sluice %v did not exit within %v; output:\n%s", args, timeout, out.String())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	default:
		t.Fatalf("gwtest: sluice %v: %v", args, err)
		return -1, ""
	}
}
