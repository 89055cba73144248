package plugin

import (
	"bytes"
	"sync"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
)

// hclogger returns a go-plugin logger that writes each line to log.
func hclogger(log *zap.Logger, name string) hclog.Logger {
	if log == nil {
		log = zap.NewNop()
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:            name,
		Level:           hclog.Info,
		Output:          &lineWriter{log: log},
		DisableTime:     true,
		IncludeLocation: false,
	})
}

// lineWriter turns hclog output into zap entries, one per line.
type lineWriter struct {
	log *zap.Logger
	mu  sync.Mutex
	buf []byte
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
			w.log.Info(string(line))
		}
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}
