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
}

// ListenerFD is one listening socket of a named listener.
type ListenerFD struct {
	Name string
	FD   int
}

// helloWire is the JSON body of a Hello message; listener descriptors travel
// as SCM_RIGHTS and are referred to by index.
type helloWire struct {
	ConfigPath string         `json:"config_path"`
	Config     []byte         `json:"config"`
	Slot       int            `json:"slot"`
	Generation int            `json:"generation"`
	Listeners  []listenerWire `json:"listeners"`
}

type listenerWire struct {
	Name string `json:"name"`
	FD   int    `json:"fd"` // index into Message.FDs
}

// Message encodes h. The message refers to h's descriptors; it does not own
// them.
func (h Hello) Message() (Message, error) {
	w := helloWire{ConfigPath: h.ConfigPath, Config: h.Config, Slot: h.Slot, Generation: h.Generation}
	fds := make([]int, 0, len(h.Listeners))
	for i, l := range h.Listeners {
		w.Listeners = append(w.Listeners, listenerWire{Name: l.Name, FD: i})
		fds = append(fds, l.FD)
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
	h := Hello{ConfigPath: w.ConfigPath, Config: w.Config, Slot: w.Slot, Generation: w.Generation}
	used := make([]bool, len(m.FDs))
	for _, l := range w.Listeners {
		if l.FD < 0 || l.FD >= len(m.FDs) || used[l.FD] {
			m.CloseFDs()
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
