package plugin

import (
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
)

// Registry holds, in a worker, the Reattach info of every plugin the
// supervisor runs, and one Attached Authorizer per plugin name shared by all
// config generations (a reload does not reconnect). Its methods are safe for
// concurrent use.
type Registry struct {
	mu    sync.Mutex
	m     map[string]*entry
	owned map[string]bool // names this process runs itself (Own)
	log   *zap.Logger     // logs plugins' output; set by Resolve
}

type entry struct {
	ra    atomic.Pointer[Reattach]
	authz *Attached
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{m: map[string]*entry{}} }

// Default is the worker's registry: the worker fills it from the
// supervisor's messages, and ext_authz filters built in the worker attach
// through it.
var Default = NewRegistry()

func (r *Registry) entry(name string) *entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.m[name]
	if e == nil {
		e = &entry{}
		e.authz = &Attached{name: name, source: &e.ra, log: r.logger}
		r.m[name] = e
	}
	return e
}

// logger returns the logger of plugins' output, nil before Resolve got one.
func (r *Registry) logger() *zap.Logger {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log
}

// Set records where plugin name now runs; Authorizers of that name dial the
// new process on their next Check.
func (r *Registry) Set(name string, ra Reattach) { r.entry(name).ra.Store(&ra) }

// Delete forgets plugin name (it was removed from the config): its
// Authorizer fails with Unavailable until Set is called again.
func (r *Registry) Delete(name string) {
	e := r.entry(name)
	e.ra.Store(nil)
	_ = e.authz.Close()
}

// Get returns the Reattach info of plugin name.
func (r *Registry) Get(name string) (Reattach, bool) {
	if ra := r.entry(name).ra.Load(); ra != nil {
		return *ra, true
	}
	return Reattach{}, false
}

// Authorizer returns the Authorizer of plugin name. It may be called before
// the plugin's Reattach info is known; until then Check fails with
// Unavailable.
func (r *Registry) Authorizer(name string) *Attached { return r.entry(name).authz }
