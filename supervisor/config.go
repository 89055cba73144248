package supervisor

import (
	"errors"
	"fmt"

	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/server"
)

// LoadConfig loads the config file at path and validates it completely: it
// also builds a generation in dry-run mode, so that a config that LoadConfig
// accepts never fails to start a worker. Errors read "file:line: key: msg"
// where the line and key are known.
func LoadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckPluginRefs(); err != nil {
		return nil, err
	}
	if err := cfg.CheckPluginFiles(); err != nil {
		return nil, err
	}
	g, err := server.Build(cfg, server.Options{DryRun: true})
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			return nil, err
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// The supervisor loads the file at every reload: the checked
	// generation must not outlive the check (its stats memfd, its clusters).
	g.Close()
	return cfg, nil
}
