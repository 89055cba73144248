package plugin

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestPluginLogLinesKeepTheirLevel logs through the go-plugin logger that
// a launched plugin gets: each line reaches zap at its hclog level, without
// the level tag, so that "plugin process exited" is an error in sluice's
// log, not an info line reading "[ERROR] ..." (as it used to be).
func TestPluginLogLinesKeepTheirLevel(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	h := hclogger(zap.New(core), "plugin.auth")
	h.Error("plugin process exited", "error", "exit status 1")
	h.Warn("plugin failed to exit gracefully")
	h.Info("starting plugin")
	want := []struct {
		level zapcore.Level
		msg   string
	}{
		{zapcore.ErrorLevel, `plugin.auth: plugin process exited: error="exit status 1"`},
		{zapcore.WarnLevel, "plugin.auth: plugin failed to exit gracefully"},
		{zapcore.InfoLevel, "plugin.auth: starting plugin"},
	}
	got := logs.All()
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Level != w.level || got[i].Message != w.msg {
			t.Errorf("entry %d = %s %q, want %s %q", i, got[i].Level, got[i].Message, w.level, w.msg)
		}
	}
}
