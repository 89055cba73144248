package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/sluice-proxy/sluice/gateway/plugin"
)

// Plugin returns the [[plugin]] table named name, or nil.
func (c *Config) Plugin(name string) *plugin.Config {
	for i := range c.Plugins {
		if c.Plugins[i].Name == name {
			return &c.Plugins[i]
		}
	}
	return nil
}

func (v *validator) plugins() {
	seen := map[string]bool{}
	for i := range v.c.Plugins {
		p := &v.c.Plugins[i]
		key := fmt.Sprintf("plugin[%d]", i)
		if p.Path != "" && !filepath.IsAbs(p.Path) && v.c.Path != "" {
			// A relative executable path is relative to the config file,
			// so that a config and the plugins beside it move together.
			if dir, err := filepath.Abs(filepath.Dir(v.c.Path)); err == nil {
				p.Path = filepath.Join(dir, p.Path)
			}
		}
		if err := p.Validate(); err != nil {
			v.errorf(key, "%v", err)
			continue
		}
		if seen[p.Name] {
			v.errorf(key+".name", "duplicate plugin name %q", p.Name)
		}
		seen[p.Name] = true
	}
}

// CheckPluginRefs checks that every filter that names a plugin by name
// (the ext_authz filters' plugin key, or any filter config with a string
// field Plugin) names a [[plugin]] table of c. The supervisor runs it on
// the configs it loads; it is not part of Load, so that a filter tested on
// its own may name a plugin its test registered by hand.
func (c *Config) CheckPluginRefs() error {
	var errs []error
	check := func(f *Filter) {
		name := pluginRef(f.Decoded)
		if name != "" && c.Plugin(name) == nil {
			errs = append(errs, c.FieldError(f.Path+".config.plugin", fmt.Errorf("no [[plugin]] is named %q", name)))
		}
	}
	for i := range c.Listeners {
		for j := range c.Listeners[i].FilterChains {
			fc := &c.Listeners[i].FilterChains[j]
			for k := range fc.Filters {
				check(&fc.Filters[k])
				if n, ok := fc.Filters[k].Decoded.(NestedFilters); ok {
					_, _, nested := n.Nested()
					for m := range nested {
						check(&nested[m])
					}
				}
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}

// CheckPluginFiles checks that every [[plugin]]'s path names an executable
// regular file. The supervisor runs it on the configs it loads (sluice
// validate, run, reload): a mistyped path would otherwise pass, and the
// plugin would fail to launch over and over while its filters deny every
// request. It is not part of Load, whose tests name plugins that need not
// exist.
func (c *Config) CheckPluginFiles() error {
	var errs []error
	for i := range c.Plugins {
		p := &c.Plugins[i]
		if err := plugin.CheckExecutable(p.Path); err != nil {
			errs = append(errs, c.errorf(fmt.Sprintf("plugin[%d].path", i), fmt.Sprintf("plugin %q: %v", p.Name, err)))
		}
	}
	return errors.Join(errs...)
}

// pluginRef returns the plugin name a decoded filter config refers to: its
// exported string field Plugin, if it has one.
func pluginRef(decoded any) string {
	v := reflect.ValueOf(decoded)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return ""
	}
	f := v.FieldByName("Plugin")
	if !f.IsValid() || f.Kind() != reflect.String {
		return ""
	}
	return strings.TrimSpace(f.String())
}
