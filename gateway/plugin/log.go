package plugin

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// hclogger returns a go-plugin logger that writes each line to log. Its
// named sub-loggers discard: go-plugin relays a plugin's stderr through
// one, at debug level for plain lines, which an info-level logger would
// drop; Launch logs that output itself (outputWriter as the client's
// Stderr), every line, so the relay would only log some lines twice.
func hclogger(log *zap.Logger, name string) hclog.Logger {
	if log == nil {
		log = zap.NewNop()
	}
	return unnamedOnly{hclog.New(&hclog.LoggerOptions{
		Name:            name,
		Level:           hclog.Info,
		Output:          &lineWriter{log: log},
		DisableTime:     true,
		IncludeLocation: false,
	})}
}

// hclogLevels map the level tag hclog starts a line with to zap's.
var hclogLevels = []struct {
	tag   string
	level zapcore.Level
}{
	{"[ERROR]", zapcore.ErrorLevel},
	{"[WARN]", zapcore.WarnLevel},
	{"[INFO]", zapcore.InfoLevel},
	{"[DEBUG]", zapcore.DebugLevel},
	{"[TRACE]", zapcore.DebugLevel},
}

// hclogLevel returns the zap level of an hclog line and the line without
// its level tag; a line without one (a continuation) is info.
func hclogLevel(line []byte) (zapcore.Level, []byte) {
	for _, l := range hclogLevels {
		if rest, ok := bytes.CutPrefix(line, []byte(l.tag)); ok {
			return l.level, bytes.TrimSpace(rest)
		}
	}
	return zapcore.InfoLevel, line
}

// unnamedOnly is an hclog.Logger whose Named loggers discard.
type unnamedOnly struct{ hclog.Logger }

func (unnamedOnly) Named(string) hclog.Logger { return hclog.NewNullLogger() }

// outputWriter returns a writer that logs each line a plugin writes to the
// stream ("stderr" or "stdout") on log, with the plugin's name.
func outputWriter(log *zap.Logger, plugin, stream string) *lineWriter {
	if log == nil {
		log = zap.NewNop()
	}
	return &lineWriter{log: log.With(zap.String("plugin", plugin), zap.String("stream", stream)), output: true}
}

// lineWriter turns hclog output into zap entries, one per line. With
// output, the lines are a plugin's: a JSON hclog line (go-plugin's own, in
// the plugin) is logged at its level with its message and fields, any other
// line as it is, at info level. Without output, the lines are go-plugin's
// (hclog's text format) and keep their level.
type lineWriter struct {
	log    *zap.Logger
	output bool
	mu     sync.Mutex
	buf    []byte
}

// logOutput logs one line of a plugin's output.
func (w *lineWriter) logOutput(line []byte) {
	var m map[string]any
	if line[0] != '{' || json.Unmarshal(line, &m) != nil {
		w.log.Info(string(line))
		return
	}
	lvl, _ := m["@level"].(string)
	msg, _ := m["@message"].(string)
	if lvl == "" || msg == "" {
		w.log.Info(string(line))
		return
	}
	fields := make([]zap.Field, 0, len(m))
	keys := make([]string, 0, len(m))
	for k := range m {
		if !strings.HasPrefix(k, "@") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		fields = append(fields, zap.Any(k, m[k]))
	}
	switch lvl {
	case "trace", "debug":
		w.log.Debug(msg, fields...)
	case "warn":
		w.log.Warn(msg, fields...)
	case "error":
		w.log.Error(msg, fields...)
	default:
		w.log.Info(msg, fields...)
	}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if line := bytes.TrimSpace(w.buf[:i]); len(line) > 0 {
			if w.output {
				w.logOutput(line)
			} else {
				level, msg := hclogLevel(line)
				w.log.Check(level, string(msg)).Write()
			}
		}
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}
