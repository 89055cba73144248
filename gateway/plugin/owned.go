package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/plugins/authapi"
)

// PathName is the registry name of a plugin that a filter names by path
// (plugin_path) instead of by a [[plugin]] table.
func PathName(path string) string {
	sum := sha256.Sum256([]byte(path))
	return "path-" + hex.EncodeToString(sum[:6])
}

// Own makes this process run the plugin of cfg itself (once per name, for
// the life of the process, restarted by Supervise) and records its Reattach
// info in r. It is for filters that name a plugin by path: a development
// and test convenience, since each worker then runs its own copy. The
// plugin gets SIGKILL when this process dies.
func (r *Registry) Own(cfg Config, log *zap.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	r.mu.Lock()
	if r.owned == nil {
		r.owned = map[string]bool{}
	}
	if r.owned[cfg.Name] {
		r.mu.Unlock()
		return nil
	}
	r.owned[cfg.Name] = true
	r.mu.Unlock()
	p, err := Launch(cfg, log)
	if err != nil {
		r.mu.Lock()
		delete(r.owned, cfg.Name)
		r.mu.Unlock()
		return err
	}
	r.Set(cfg.Name, p.Reattach())
	go func() {
		p.Wait()
		_ = Supervise(context.Background(), cfg, log, func(ra Reattach) { r.Set(cfg.Name, ra) })
	}()
	return nil
}

// Resolve returns the Authorizer a filter uses: the registered plugin name,
// or the plugin at path which this process then runs itself (see Own).
// Exactly one of name and path must be set. In a dry run it only validates
// and returns nil.
func (r *Registry) Resolve(name, path string, dryRun bool, log *zap.Logger) (authapi.Authorizer, error) {
	switch {
	case name == "" && path == "":
		return nil, errors.New("plugin: one of plugin and plugin_path is required")
	case name != "" && path != "":
		return nil, errors.New("plugin: plugin and plugin_path are exclusive")
	case path != "" && !filepath.IsAbs(path):
		return nil, fmt.Errorf("plugin: plugin_path: must be absolute, not %q", path)
	case name != "" && !nameRE.MatchString(name):
		return nil, fmt.Errorf("plugin: %q is not a valid plugin name", name)
	}
	if path != "" {
		// Checked in dry runs too, so that sluice validate names a
		// mistyped path instead of workers failing to launch it.
		if err := CheckExecutable(path); err != nil {
			return nil, fmt.Errorf("plugin: plugin_path: %w", err)
		}
	}
	if dryRun {
		return nil, nil
	}
	if log != nil {
		r.mu.Lock()
		if r.log == nil {
			r.log = log
		}
		r.mu.Unlock()
	}
	if path != "" {
		name = PathName(path)
		if err := r.Own(Config{Name: name, Path: path}, log); err != nil {
			return nil, err
		}
	}
	return r.Authorizer(name), nil
}

// CheckExecutable reports why path cannot be a plugin executable (missing,
// not a regular file, not executable), or nil.
func CheckExecutable(path string) error {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", path)
	case fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("%s is not executable (mode %v)", path, fi.Mode().Perm())
	}
	return nil
}
