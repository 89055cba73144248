package plugin

import (
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// Config is one [[plugin]] table: an executable the supervisor runs and
// restarts.
//
//	[[plugin]]
//	name   = "apikey"
//	path   = "/usr/lib/sluice/plugins/apikey"
//	args   = ["-keys", "/etc/sluice/keys.txt"]
//	sha256 = "9f86d0…"            # optional: checked before every launch
//	env    = { LOG_LEVEL = "info" }
type Config struct {
	// Name is how filters refer to the plugin (ext_authz's plugin key).
	// Required: lowercase letters, digits, '_' and '-'.
	Name string `toml:"name"`
	// Path is the executable. Required; a relative path in a config file
	// is resolved against the file's directory when the config is loaded.
	Path string `toml:"path"`
	// Args are the executable's arguments.
	Args []string `toml:"args"`
	// SHA256 is the executable's expected SHA-256, in hex; when set, a
	// mismatch refuses the launch (go-plugin SecureConfig).
	SHA256 string `toml:"sha256"`
	// Env is added to the environment the plugin inherits from sluice; a
	// variable set here overrides an inherited one of the same name.
	Env map[string]string `toml:"env"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// Validate checks c without touching the file system.
func (c *Config) Validate() error {
	switch {
	case !nameRE.MatchString(c.Name):
		return errors.New("plugin: name: must match [a-z0-9][a-z0-9_-]*")
	case c.Path == "":
		return fmt.Errorf("plugin %q: path: required", c.Name)
	case !filepath.IsAbs(c.Path):
		return fmt.Errorf("plugin %q: path: must be absolute, not %q", c.Name, c.Path)
	}
	if c.SHA256 != "" {
		if b, err := hex.DecodeString(c.SHA256); err != nil || len(b) != 32 {
			return fmt.Errorf("plugin %q: sha256: must be 64 hex digits", c.Name)
		}
	}
	for k := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("plugin %q: env: invalid variable name %q", c.Name, k)
		}
	}
	return nil
}

// Equal reports whether c and o launch the same process: a reload keeps a
// plugin whose config is Equal.
func (c *Config) Equal(o *Config) bool {
	if c.Name != o.Name || c.Path != o.Path || !strings.EqualFold(c.SHA256, o.SHA256) ||
		len(c.Args) != len(o.Args) || len(c.Env) != len(o.Env) {
		return false
	}
	for i := range c.Args {
		if c.Args[i] != o.Args[i] {
			return false
		}
	}
	for k, v := range c.Env {
		if ov, ok := o.Env[k]; !ok || ov != v {
			return false
		}
	}
	return true
}
