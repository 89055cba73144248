package supervisor

import (
	"fmt"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sluice-proxy/sluice/gateway/config"
)

// NewLogger returns the logger described by c (level debug, info, warn or
// error; format json or console), writing to stderr without sampling: a
// supervisor's log lines are rare and every one matters.
func NewLogger(c config.Log) (*zap.Logger, error) {
	log, _, err := NewLevelLogger(c)
	return log, err
}

// NewLevelLogger is NewLogger with the level returned as a zap.AtomicLevel,
// which changes the logger's level at runtime (the admin /logging).
func NewLevelLogger(c config.Log) (*zap.Logger, zap.AtomicLevel, error) {
	level := zap.NewAtomicLevelAt(zapcore.InfoLevel)
	if c.Level != "" {
		if err := level.UnmarshalText([]byte(c.Level)); err != nil {
			return nil, level, fmt.Errorf("supervisor: log.level: %w", err)
		}
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	enc.EncodeDuration = zapcore.StringDurationEncoder
	var encoder zapcore.Encoder
	switch c.Format {
	case "", "json":
		encoder = zapcore.NewJSONEncoder(enc)
	case "console":
		enc.EncodeLevel = zapcore.CapitalLevelEncoder
		encoder = zapcore.NewConsoleEncoder(enc)
	default:
		return nil, level, fmt.Errorf("supervisor: log.format: unknown format %q", c.Format)
	}
	core := zapcore.NewCore(encoder, zapcore.Lock(os.Stderr), level)
	return zap.New(core, zap.ErrorOutput(zapcore.Lock(os.Stderr))), level, nil
}
