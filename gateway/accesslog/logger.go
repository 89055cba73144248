package accesslog

import (
	"errors"
	"fmt"
	"sync"

	"github.com/sluice-proxy/sluice/gateway/registry"
)

// Config is one access log of an HTTP connection manager or tcp_proxy, as
// written in TOML (decoded by whoever embeds it, e.g. an access_log array
// of tables):
//
//	[[listener.filter_chain.filter.config.access_log]]
//	path = "/var/log/sluice/access.log"   # or "/dev/stdout", "/dev/stderr"
//	format = "..."                        # default: Envoy's default format
//	# or, instead of format:
//	[listener.filter_chain.filter.config.access_log.json_format]
//	status = "%RESPONSE_CODE%"
type Config struct {
	// Path is the file, "/dev/stdout" or "/dev/stderr". Required.
	Path string `toml:"path"`
	// Format is a format string (see Compile); empty means DefaultFormat.
	Format string `toml:"format"`
	// JSONFormat maps JSON keys to format strings (see CompileJSON). It
	// excludes Format.
	JSONFormat map[string]string `toml:"json_format"`
	// Filter, when set, chooses which records are written (Envoy's
	// access log filter); the others cost one check.
	Filter *Filter `toml:"filter"`
}

// compile checks the config and compiles its format and filter; an error
// names a key relative to the access log's table.
func (c *Config) compile() (*Formatter, *cond, error) {
	f, err := c.Formatter()
	if err != nil {
		return nil, nil, err
	}
	if c.Filter == nil {
		return f, nil, nil
	}
	cd, err := compileFilter(c.Filter, "filter")
	if err != nil {
		return nil, nil, err
	}
	return f, &cd, nil
}

// Formatter compiles the config's format.
func (c *Config) Formatter() (*Formatter, error) {
	switch {
	case c.Path == "":
		return nil, errors.New("accesslog: path: required")
	case c.Format != "" && len(c.JSONFormat) > 0:
		return nil, errors.New("accesslog: format and json_format are exclusive")
	case len(c.JSONFormat) > 0:
		return CompileJSON(c.JSONFormat)
	}
	return Compile(c.Format)
}

// Logger formats records and writes them to a sink. It is safe for
// concurrent use.
type Logger struct {
	f      *Formatter
	filter *cond // nil: every record
	sink   *Sink
}

// NewLogger returns a logger writing f's lines to sink.
func NewLogger(f *Formatter, sink *Sink) *Logger { return &Logger{f: f, sink: sink} }

// Log formats rec and queues the line; it does not block and does not
// allocate in the steady state.
func (l *Logger) Log(rec *Record) {
	if l.filter != nil && !l.filter.match(rec) {
		return
	}
	b := Buffer()
	*b = l.f.Format(*b, rec)
	if n := len(*b); n == 0 || (*b)[n-1] != '\n' {
		*b = append(*b, '\n')
	}
	l.sink.Write(b)
}

// Files is a process's set of sinks, one per path, so that every logger
// writing to a path shares one writer (and one file descriptor), and so
// that SIGUSR1 or the admin /reopen_logs can reopen them all. It is safe
// for concurrent use.
type Files struct {
	opts  Options
	mu    sync.Mutex
	sinks map[string]*Sink
	refs  map[string]int
}

// NewFiles returns an empty set whose sinks use opts.
func NewFiles(opts Options) *Files {
	return &Files{opts: opts, sinks: map[string]*Sink{}, refs: map[string]int{}}
}

// Logger builds the logger of c, opening its sink or sharing the one
// already open for the path. Call Release(path) when the config generation
// that asked for it is gone.
func (fs *Files) Logger(c *Config) (*Logger, error) {
	f, filter, err := c.compile()
	if err != nil {
		return nil, err
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	s := fs.sinks[c.Path]
	if s == nil {
		if s, err = Open(c.Path, fs.opts); err != nil {
			return nil, err
		}
		fs.sinks[c.Path] = s
	}
	fs.refs[c.Path]++
	return &Logger{f: f, filter: filter, sink: s}, nil
}

// Release drops one reference to path's sink, closing it with the last.
func (fs *Files) Release(path string) {
	fs.mu.Lock()
	s := fs.sinks[path]
	fs.refs[path]--
	last := fs.refs[path] <= 0
	if last {
		delete(fs.sinks, path)
		delete(fs.refs, path)
	}
	fs.mu.Unlock()
	if last && s != nil {
		s.Close()
	}
}

// Reopen reopens every file sink and returns the errors joined.
func (fs *Files) Reopen() error {
	fs.mu.Lock()
	sinks := make([]*Sink, 0, len(fs.sinks))
	for _, s := range fs.sinks {
		sinks = append(sinks, s)
	}
	fs.mu.Unlock()
	var errs []error
	for _, s := range sinks {
		if err := s.Reopen(); err != nil {
			errs = append(errs, fmt.Errorf("accesslog: reopen %s: %w", s.Path(), err))
		}
	}
	return errors.Join(errs...)
}

// Close closes every sink.
func (fs *Files) Close() {
	fs.mu.Lock()
	sinks := fs.sinks
	fs.sinks, fs.refs = map[string]*Sink{}, map[string]int{}
	fs.mu.Unlock()
	for _, s := range sinks {
		s.Close()
	}
}

// Build builds the loggers of a filter's access_log configs: each format is
// checked (an error names access_log[i]), and, unless dryRun or files is
// not a *Files (a build without a worker's log files), each logger opens or
// shares its sink (an error names access_log[i].path).
func Build(cfgs []Config, files any, dryRun bool) ([]*Logger, error) {
	var loggers []*Logger
	for i := range cfgs {
		c := &cfgs[i]
		key := fmt.Sprintf("access_log[%d]", i)
		if _, _, err := c.compile(); err != nil {
			return nil, registry.Within(key, err)
		}
		fs, ok := files.(*Files)
		if dryRun || !ok {
			continue
		}
		lg, err := fs.Logger(c)
		if err != nil {
			return nil, &registry.FieldError{Key: key + ".path", Err: err}
		}
		loggers = append(loggers, lg)
	}
	return loggers, nil
}
