package supervisor_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unitFiles are the shipped systemd units, relative to this package.
var unitFiles = []string{"../systemd/sluice.service", "../systemd/sluice.socket"}

// TestSystemdUnitsVerify runs systemd-analyze verify on the units in a
// scratch root that holds systemd's own units and a sluice binary at the
// ExecStart path. It fails, not skips, where systemd-analyze is missing
// (Debian package: systemd).
func TestSystemdUnitsVerify(t *testing.T) {
	t.Parallel()
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is needed to verify the units (apt-get install systemd): %v", err)
	}
	root := t.TempDir()
	unitDir := filepath.Join(root, "etc/systemd/system")
	for _, dir := range []string{unitDir, filepath.Join(root, "usr/local/bin"), filepath.Join(root, "usr/lib/systemd")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "-r", "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/")).CombinedOutput(); err != nil {
		t.Fatalf("copy systemd's units: %v\n%s", err, out)
	}
	if out, err := exec.Command("cp", binary, filepath.Join(root, "usr/local/bin/sluice")).CombinedOutput(); err != nil {
		t.Fatalf("copy sluice: %v\n%s", err, out)
	}
	args := []string{"verify", "--root=" + root, "--man=no"}
	for _, f := range unitFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(unitDir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "/etc/systemd/system/"+filepath.Base(f))
	}
	out, err := exec.Command(tool, args...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestSystemdUnitsSayWhatOperationsNeed checks the settings that sluice's
// lifecycle depends on.
func TestSystemdUnitsSayWhatOperationsNeed(t *testing.T) {
	t.Parallel()
	want := map[string][]string{
		"../systemd/sluice.service": {
			"Type=notify", "NotifyAccess=all", "KillMode=mixed", "LimitNOFILE=1048576", "RuntimeDirectory=sluice",
			"ExecStart=/usr/local/bin/sluice run -c /etc/sluice/sluice.toml",
			"ExecReload=/usr/local/bin/sluice reload -c /etc/sluice/sluice.toml",
			"NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=", "PrivateTmp=yes", "ProtectHome=yes",
		},
		"../systemd/sluice.socket": {"ListenStream=127.0.0.1:8080", "FileDescriptorName=http", "Service=sluice.service"},
	}
	for file, lines := range want {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, l := range strings.Split(string(b), "\n") {
			have[strings.TrimSpace(l)] = true
		}
		for _, l := range lines {
			found := have[l]
			for h := range have {
				found = found || (strings.HasSuffix(l, "=") && strings.HasPrefix(h, l))
			}
			if !found {
				t.Errorf("%s lacks %q", file, l)
			}
		}
		for l := range have {
			if strings.HasPrefix(l, "RestrictAddressFamilies=") && !strings.Contains(l, "AF_NETLINK") {
				t.Errorf("%s: %q forbids netlink, which resolving the zone of a scoped IPv6 listener address needs", file, l)
			}
		}
		if strings.Contains(string(b), "\nNoExecPaths=") {
			t.Errorf("%s sets NoExecPaths, which would stop upgrades from executing a new binary", file)
		}
	}
}
