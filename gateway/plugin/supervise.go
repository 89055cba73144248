package plugin

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// Restart backoff of Supervise: it starts at minBackoff, doubles after each
// launch failure or short-lived run, is capped at maxBackoff, and is reset by
// a run that lasted stableRun.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 10 * time.Second
	stableRun  = 10 * time.Second
)

// Supervise runs the plugin of cfg until ctx is cancelled: it launches it,
// calls onReattach with each new process's Reattach info (on the calling
// goroutine, before waiting on the process), and relaunches it when it
// exits or fails to start, with capped exponential backoff. When ctx is
// cancelled it kills the running process and returns ctx's error.
func Supervise(ctx context.Context, cfg Config, log *zap.Logger, onReattach func(Reattach)) error {
	if log == nil {
		log = zap.NewNop()
	}
	backoff := minBackoff
	for {
		started := time.Now()
		p, err := Launch(cfg, log)
		if err != nil {
			log.Error("plugin: launch failed", zap.String("plugin", cfg.Name), zap.Error(err), zap.Duration("retry_in", backoff))
		} else {
			log.Info("plugin: running", zap.String("plugin", cfg.Name), zap.Int("pid", p.Pid()))
			onReattach(p.Reattach())
			select {
			case <-ctx.Done():
				p.Kill()
				return ctx.Err()
			case <-p.Done():
			}
			log.Warn("plugin: exited, restarting", zap.String("plugin", cfg.Name), zap.Int("pid", p.Pid()), zap.Duration("retry_in", backoff))
			if time.Since(started) >= stableRun {
				backoff = minBackoff
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}
