package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
)

// docExample is one ```toml block of a Markdown file.
type docExample struct {
	file string // relative to the repository root
	line int    // of the opening fence
	text string
}

// docExamples returns every ```toml block of the user documentation:
// docs/, docs/filters/, each filter's README and plugins/README.md.
func docExamples(t *testing.T, root string) []docExample {
	t.Helper()
	var files []string
	for _, pattern := range []string{"docs/*.md", "docs/filters/*.md", "plugins/README.md", "README.md"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	err := filepath.WalkDir(filepath.Join(root, "gateway", "filters"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "README.md" {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	var out []docExample
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		var cur *docExample
		n := 0
		for sc.Scan() {
			n++
			line := sc.Text()
			trimmed := strings.TrimSpace(line)
			switch {
			case cur == nil && trimmed == "```toml":
				cur = &docExample{file: rel, line: n}
			case cur != nil && strings.HasPrefix(trimmed, "```"):
				out = append(out, *cur)
				cur = nil
			case cur != nil:
				cur.text += line + "\n"
			}
		}
		if cur != nil {
			t.Fatalf("%s:%d: unterminated ```toml block", rel, cur.line)
		}
	}
	return out
}

// firstHeader returns the first table header of a TOML text, "" if it has
// none (bare keys).
func firstHeader(text string) string {
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "[") {
			h, _, _ := strings.Cut(l, "#")
			return strings.TrimSpace(h)
		}
		if l != "" && !strings.HasPrefix(l, "#") {
			return ""
		}
	}
	return ""
}

const (
	docListener  = "[[listener]]\nname = \"docs-example\"\naddress = \"127.0.0.1:0\"\n"
	docChain     = "[[listener.filter_chain]]\n"
	docTCPProxy  = "[[listener.filter_chain.filter]]\nname = \"sluice.filters.network.tcp_proxy\"\nconfig = { stat_prefix = \"docs_example\", cluster = \"docs-example\" }\n"
	docHCM       = "[[listener.filter_chain.filter]]\nname = \"sluice.filters.network.http_connection_manager\"\n[listener.filter_chain.filter.config]\nstat_prefix = \"docs_example\"\nroute_config = \"docs-example\"\n"
	docRouter    = "[[listener.filter_chain.filter.config.http_filter]]\nname = \"sluice.filters.http.router\"\n"
	docRouteHead = "[[route_config]]\nname = \"docs-example\"\n[[route_config.virtual_host]]\ndomains = [\"*\"]\n"
)

// docConfig makes a whole config of an example: a fragment (a filter, a
// route, a listener filter, header mutations) is put where its first table
// header says it goes, with the listener, filter chain, terminal filter or
// router around it that it needs.
func docConfig(text string) string {
	h := firstHeader(text)
	if topLevel(h) {
		// Whole top-level tables, maybe followed by a fragment to place.
		lines := strings.SplitAfter(text, "\n")
		cur := ""
		for i, l := range lines {
			t := strings.TrimSpace(l)
			if !strings.HasPrefix(t, "[") {
				continue
			}
			hdr, _, _ := strings.Cut(t, "#")
			name := strings.Trim(strings.TrimSpace(hdr), "[]")
			switch {
			case topLevel(t):
				cur = name
			case !strings.HasPrefix(name, cur+"."):
				return strings.Join(lines[:i], "") + docConfig(strings.Join(lines[i:], ""))
			}
		}
		return text
	}
	hasRouter := strings.Contains(text, `"sluice.filters.http.router"`)
	terminal := strings.Contains(text, `"sluice.filters.network.tcp_proxy"`) ||
		strings.Contains(text, `"sluice.filters.network.http_connection_manager"`)
	switch {
	case h == "":
		return docRouteHead + "[[route_config.virtual_host.route]]\nmatch = { prefix = \"/\" }\ncluster = \"docs-example\"\n" + text
	case strings.HasPrefix(h, "[[route_config.virtual_host.route]]"):
		return docRouteHead + text
	case strings.HasPrefix(h, "[[listener.filter_chain.filter.config.http_filter]]"),
		strings.HasPrefix(h, "[[listener.filter_chain.filter.config.access_log]]"),
		strings.HasPrefix(h, "[listener.filter_chain.filter.config.tracing]"):
		out := docListener + docChain + docHCM + text
		if !hasRouter {
			out += docRouter
		}
		return out
	case strings.HasPrefix(h, "[listener.filter_chain.filter.config."):
		// A subtable of the manager's config (local_reply_config, an
		// access log's filter).
		out := docListener + docChain + docHCM
		if strings.HasPrefix(h, "[listener.filter_chain.filter.config.access_log.") {
			out += "[[listener.filter_chain.filter.config.access_log]]\npath = \"/dev/stdout\"\n"
		}
		return out + text + docRouter
	case strings.HasPrefix(h, "[[listener.filter_chain.filter]]"):
		out := docListener + docChain + text
		if !terminal {
			out += docTCPProxy
		}
		return out
	case strings.HasPrefix(h, "[[listener.listener_filter]]"):
		out := docListener + text
		if !strings.Contains(text, "[[listener.filter_chain]]") {
			out += docChain + docTCPProxy
		}
		return out
	default:
		return text
	}
}

// topLevel reports whether a table header opens a whole top-level table
// (or one of its subtables) rather than a fragment of a listener or route.
func topLevel(h string) bool {
	switch strings.TrimSpace(strings.Split(h, "#")[0]) {
	case "[server]", "[admin]", "[log]", "[statsd]", "[[plugin]]", "[[cluster]]", "[[listener]]", "[[route_config]]":
		return true
	}
	return false
}

// docReferences returns the clusters, route configs and plugins a config
// refers to without defining them.
func docReferences(t *testing.T, cfg string) (clusters, routes, plugins []string) {
	t.Helper()
	var m map[string]any
	if _, err := toml.Decode(cfg, &m); err != nil {
		t.Fatalf("not TOML: %v\n%s", err, cfg)
	}
	defined := map[string]map[string]bool{"cluster": {}, "route_config": {}, "plugin": {}}
	for kind := range defined {
		tables, _ := m[kind].([]map[string]any)
		for _, tb := range tables {
			if n, ok := tb["name"].(string); ok {
				defined[kind][n] = true
			}
		}
	}
	refs := map[string]map[string]bool{"cluster": {}, "route_config": {}, "plugin": {}}
	var walk func(v any, top bool)
	walk = func(v any, top bool) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && !top {
					switch k {
					case "cluster", "tcp_cluster_name":
						refs["cluster"][s] = true
					case "route_config", "plugin":
						refs[k][s] = true
					}
				}
				if k == "weighted_clusters" {
					if ws, ok := x.([]map[string]any); ok {
						for _, w := range ws {
							if n, ok := w["name"].(string); ok {
								refs["cluster"][n] = true
							}
						}
					}
				}
				walk(x, false)
			}
		case []map[string]any:
			for _, x := range v {
				walk(x, false)
			}
		case []any:
			for _, x := range v {
				walk(x, false)
			}
		}
	}
	walk(m, true)
	missing := func(kind string) []string {
		var out []string
		for n := range refs[kind] {
			if !defined[kind][n] {
				out = append(out, n)
			}
		}
		sort.Strings(out)
		return out
	}
	return missing("cluster"), missing("route_config"), missing("plugin")
}

// TestDocsTOMLExamplesAreValid runs every ```toml example of docs/, the
// filter READMEs and plugins/README.md through sluice validate, so that no
// documented key, value or default drifts from what sluice accepts. A
// fragment is put into the smallest config around it (see docConfig); the
// clusters, route configs and plugins it names but does not define are
// added; a plugin's path and a "…" sha256 become a real plugin binary's,
// and certificate, key and CA files generated ones.
func TestDocsTOMLExamplesAreValid(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	examples := docExamples(t, root)
	if len(examples) < 15 {
		t.Fatalf("found only %d ```toml examples; is the extraction broken?", len(examples))
	}
	dir := t.TempDir()
	pluginBin := filepath.Join(dir, "apikey")
	build := exec.Command("go", "build", "-o", pluginBin, "./plugins/apikey")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build apikey: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(pluginBin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)
	// Certificates, keys and CA bundles an example names stand for real ones.
	certs := filepath.Join(dir, "certs")
	gen := exec.Command("go", "run", "./tools/gencert", "-dir", certs)
	gen.Dir = root
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("gencert: %v\n%s", err, out)
	}
	pemFiles := map[*regexp.Regexp]string{
		regexp.MustCompile(`(cert_file\s*=\s*)"[^"]*"`): filepath.Join(certs, "server.pem"),
		regexp.MustCompile(`(key_file\s*=\s*)"[^"]*"`):  filepath.Join(certs, "server-key.pem"),
		regexp.MustCompile(`(ca_file\s*=\s*)"[^"]*"`):   filepath.Join(certs, "ca.pem"),
	}
	pluginPath := regexp.MustCompile(`(?m)^(\s*path\s*=\s*)"/usr/lib/sluice/plugins/[^"]*"`)
	placeholderSum := regexp.MustCompile(`(?m)^(\s*sha256\s*=\s*)"…"`)
	for i, ex := range examples {
		t.Run(fmt.Sprintf("%s:%d", ex.file, ex.line), func(t *testing.T) {
			cfg := docConfig(ex.text)
			cfg = pluginPath.ReplaceAllString(cfg, `${1}"`+pluginBin+`"`)
			cfg = placeholderSum.ReplaceAllString(cfg, `${1}"`+hex.EncodeToString(sum[:])+`"`)
			for re, file := range pemFiles {
				cfg = re.ReplaceAllString(cfg, `${1}"`+file+`"`)
			}
			clusters, routes, plugins := docReferences(t, cfg)
			if len(routes) > 0 && !strings.Contains(cfg, `"docs-example"`) {
				clusters = append(clusters, "docs-example")
			}
			for _, r := range routes {
				cfg += fmt.Sprintf("\n[[route_config]]\nname = %q\n[[route_config.virtual_host]]\ndomains = [\"*\"]\n[[route_config.virtual_host.route]]\nmatch = { prefix = \"/\" }\ncluster = \"docs-example\"\n", r)
			}
			if len(routes) > 0 || strings.Contains(cfg, `cluster = "docs-example"`) || strings.Contains(cfg, `cluster = \"docs-example\"`) {
				clusters = appendMissing(clusters, "docs-example")
			}
			for _, c := range clusters {
				if definesCluster(cfg, c) {
					continue
				}
				cfg += fmt.Sprintf("\n[[cluster]]\nname = %q\nendpoints = [\"127.0.0.1:1\"]\n", c)
			}
			for _, p := range plugins {
				cfg += fmt.Sprintf("\n[[plugin]]\nname = %q\npath = %q\n", p, pluginBin)
			}
			path := filepath.Join(dir, fmt.Sprintf("example-%d.toml", i))
			if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out := gwtest.Exec(t, 30*time.Second, "validate", "-c", path)
			if code != 0 {
				t.Errorf("%s:%d: the example does not validate:\n%s\nas checked:\n%s", ex.file, ex.line, out, cfg)
			}
		})
	}
}

func appendMissing(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// definesCluster reports whether cfg already has a [[cluster]] named name.
func definesCluster(cfg, name string) bool {
	var m struct {
		Cluster []struct{ Name string } `toml:"cluster"`
	}
	if _, err := toml.Decode(cfg, &m); err != nil {
		return false
	}
	for _, c := range m.Cluster {
		if c.Name == name {
			return true
		}
	}
	return false
}
