package hotrestart

import (
	"encoding/json"
	"fmt"
)

// Hello is what a worker needs to start: its config, identity and sockets.
type Hello struct {
	// ConfigPath is the file the config was loaded from (for error
	// messages); Config holds its bytes, so the worker parses exactly what
	// the supervisor validated even if the file has changed since.
	ConfigPath string
	Config     []byte
	// Slot is the worker's index in [0, server.workers); Generation the
	// supervisor's config generation.
	Slot       int
	Generation int
	// Listeners are the worker's listening sockets, one per configured
	// listener, in config order.
	Listeners []ListenerFD
	// StatsFD is the supervisor's stats region (a memfd), -1 for none;
	// StatsSlab is the worker slab of that region the worker writes to.
	StatsFD   int
	StatsSlab int
	// HostStateFD is the supervisor's host-state region (a memfd), -1 or
	// 0 for none; HostStateWorker is the worker's index in it (its circuit
	// breakers' shadow counters).
	HostStateFD     int
	HostStateWorker int
	// TicketKeys are the TLS session ticket keys shared by every worker
	// (the first encrypts, all decrypt).
	TicketKeys [][32]byte
	// LogLevel is the level the worker logs at, when set at runtime
	// through the admin /logging; empty means the config's.
	LogLevel string
	// Plugins maps each [[plugin]] name to the Reattach info (JSON) of its
	// running process, as known when the worker starts; later changes
	// arrive as TypePluginReattach messages.
	Plugins map[string]json.RawMessage
	// ClusterHosts are the host sets of the DNS clusters, by cluster name,
	// as resolved when the worker starts; later changes arrive as
	// TypeClusterHosts messages.
	ClusterHosts map[string][]string
}

// ListenerFD is one listening socket of a named listener.
type ListenerFD struct {
	Name string
	FD   int
}

// helloWire is the JSON body of a Hello message; listener descriptors travel
// as SCM_RIGHTS and are referred to by index.
type helloWire struct {
	ConfigPath string                     `json:"config_path"`
	Config     []byte                     `json:"config"`
	Slot       int                        `json:"slot"`
	Generation int                        `json:"generation"`
	Listeners  []listenerWire             `json:"listeners"`
	StatsFD    int                        `json:"stats_fd"` // index into Message.FDs, -1 for none
	StatsSlab  int                        `json:"stats_slab"`
	HostFD     *int                       `json:"host_state_fd,omitempty"` // index into Message.FDs; absent for none
	HostWorker int                        `json:"host_state_worker,omitempty"`
	TicketKeys [][]byte                   `json:"ticket_keys,omitempty"`
	LogLevel   string                     `json:"log_level,omitempty"`
	Plugins    map[string]json.RawMessage `json:"plugins,omitempty"`
	Clusters   map[string][]string        `json:"cluster_hosts,omitempty"`
}

type listenerWire struct {
	Name string `json:"name"`
	FD   int    `json:"fd"` // index into Message.FDs
}

// Message encodes h. The message refers to h's descriptors; it does not own
// them.
func (h Hello) Message() (Message, error) {
	w := helloWire{ConfigPath: h.ConfigPath, Config: h.Config, Slot: h.Slot, Generation: h.Generation,
		StatsFD: -1, StatsSlab: h.StatsSlab, LogLevel: h.LogLevel, Plugins: h.Plugins,
		Clusters: h.ClusterHosts}
	fds := make([]int, 0, len(h.Listeners)+1)
	for i, l := range h.Listeners {
		w.Listeners = append(w.Listeners, listenerWire{Name: l.Name, FD: i})
		fds = append(fds, l.FD)
	}
	if h.StatsFD >= 0 {
		w.StatsFD = len(fds)
		fds = append(fds, h.StatsFD)
	}
	if h.HostStateFD > 0 {
		i := len(fds)
		w.HostFD, w.HostWorker = &i, h.HostStateWorker
		fds = append(fds, h.HostStateFD)
	}
	for _, k := range h.TicketKeys {
		w.TicketKeys = append(w.TicketKeys, k[:])
	}
	body, err := json.Marshal(w)
	if err != nil {
		return Message{}, fmt.Errorf("hotrestart: encode hello: %w", err)
	}
	return Message{Type: TypeHello, Body: body, FDs: fds}, nil
}

// DecodeHello decodes a Hello message. The returned Hello owns the
// descriptors of m; on error they are all closed. Descriptors that no
// listener refers to are closed too.
func DecodeHello(m Message) (Hello, error) {
	if m.Type != TypeHello {
		m.CloseFDs()
		return Hello{}, fmt.Errorf("%w: want hello, got %s", ErrProtocol, m.Type)
	}
	var w helloWire
	if err := json.Unmarshal(m.Body, &w); err != nil {
		m.CloseFDs()
		return Hello{}, fmt.Errorf("%w: decode hello: %v", ErrProtocol, err)
	}
	h := Hello{ConfigPath: w.ConfigPath, Config: w.Config, Slot: w.Slot, Generation: w.Generation,
		StatsFD: -1, StatsSlab: w.StatsSlab, LogLevel: w.LogLevel, Plugins: w.Plugins,
		HostStateFD: -1, HostStateWorker: w.HostWorker, ClusterHosts: w.Clusters}
	for _, k := range w.TicketKeys {
		if len(k) != 32 {
			m.CloseFDs()
			return Hello{}, fmt.Errorf("%w: hello: ticket key of %d bytes, want 32", ErrProtocol, len(k))
		}
		h.TicketKeys = append(h.TicketKeys, [32]byte(k))
	}
	used := make([]bool, len(m.FDs))
	if w.StatsFD >= 0 {
		if w.StatsFD >= len(m.FDs) {
			m.CloseFDs()
			return Hello{}, fmt.Errorf("%w: hello: stats region refers to fd index %d of %d", ErrProtocol, w.StatsFD, len(m.FDs))
		}
		used[w.StatsFD] = true
		h.StatsFD = m.FDs[w.StatsFD]
	}
	if w.HostFD != nil {
		if i := *w.HostFD; i < 0 || i >= len(m.FDs) || used[i] {
			m.CloseFDs()
			return Hello{}, fmt.Errorf("%w: hello: host-state region refers to fd index %d of %d", ErrProtocol, i, len(m.FDs))
		}
		used[*w.HostFD] = true
		h.HostStateFD = m.FDs[*w.HostFD]
	}
	for _, l := range w.Listeners {
		if l.FD < 0 || l.FD >= len(m.FDs) || used[l.FD] {
			m.CloseFDs()
			h.StatsFD, h.HostStateFD = -1, -1
			return Hello{}, fmt.Errorf("%w: hello: listener %q refers to fd index %d of %d", ErrProtocol, l.Name, l.FD, len(m.FDs))
		}
		used[l.FD] = true
		h.Listeners = append(h.Listeners, ListenerFD{Name: l.Name, FD: m.FDs[l.FD]})
	}
	for i, u := range used {
		if !u {
			closeFD(m.FDs[i])
		}
	}
	return h, nil
}
