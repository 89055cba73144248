package hotrestart

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Version is the version of the upgrade protocol: the messages below and
// what they mean. Two supervisors upgrade into each other only if their
// versions are equal; change it whenever a message changes incompatibly.
const Version = 2

// versionOverride replaces Version when set at link time
// (-X github.com/sluice-proxy/sluice/hotrestart.versionOverride=N); it
// exists to test the refusal of an incompatible binary.
var versionOverride string

// LocalVersion returns the upgrade protocol version this binary speaks:
// Version, unless a link-time override says otherwise.
func LocalVersion() int {
	if v, err := strconv.Atoi(versionOverride); err == nil {
		return v
	}
	return Version
}

// EnvUpgradeFD names the environment variable through which a supervisor
// tells the binary it starts for an upgrade which descriptor is the
// upgrade channel (a SOCK_SEQPACKET socket; 3 today).
const EnvUpgradeFD = "SLUICE_UPGRADE_FD"

// The message types of a binary upgrade, between the running ("old")
// supervisor and the one it started from the new binary ("new"):
//
//	new → old  UpgradeHello      its protocol version, first
//	old → new  UpgradeState      sockets, control socket, generation numbers
//	           (or UpgradeRefused, if the versions differ)
//	old → new  Stats             stats regions, ticket keys, epoch (Inherited)
//	new → old  UpgradeReady      its first generation serves: drain yours
//	           (or UpgradeFailed, and the new supervisor exits)
//	old → new  Handoff …         idle connections of the old workers
//	old        closes the channel once its last worker is gone
const (
	// TypeUpgradeHello goes from the new supervisor to the old one, first.
	// Body: UpgradeHello as JSON.
	TypeUpgradeHello Type = 6
	// TypeUpgradeState answers UpgradeHello. Body: UpgradeState as JSON;
	// descriptors: every listening socket and the control socket.
	TypeUpgradeState Type = 7
	// TypeUpgradeRefused answers an UpgradeHello that the old supervisor
	// cannot serve (an incompatible version). Body: the reason as text.
	TypeUpgradeRefused Type = 8
	// TypeUpgradeReady goes from the new supervisor to the old one once
	// every worker of its first generation is ready. Body: UpgradeReady as
	// JSON.
	TypeUpgradeReady Type = 9
	// TypeUpgradeFailed goes from the new supervisor to the old one before
	// it exits without serving. Body: the reason as text.
	TypeUpgradeFailed Type = 10
	// TypeStats follows UpgradeState. Body: Inherited as JSON;
	// descriptors: the stats regions.
	TypeStats Type = 11
	// TypePluginReattach goes from a supervisor to its workers: where a
	// plugin process now runs. Body: PluginReattach as JSON.
	TypePluginReattach Type = 12
)

func init() {
	typeNames[TypeUpgradeHello] = "upgrade hello"
	typeNames[TypeUpgradeState] = "upgrade state"
	typeNames[TypeUpgradeRefused] = "upgrade refused"
	typeNames[TypeUpgradeReady] = "upgrade ready"
	typeNames[TypeUpgradeFailed] = "upgrade failed"
	typeNames[TypeStats] = "stats"
	typeNames[TypePluginReattach] = "plugin reattach"
}

// UpgradeHello introduces the new supervisor.
type UpgradeHello struct {
	// Version is the new binary's LocalVersion.
	Version int `json:"version"`
	// PID is the new supervisor's process id.
	PID int `json:"pid"`
	// Build is the new binary's version string, for the log.
	Build string `json:"build,omitempty"`
}

// UpgradeState is everything the new supervisor takes over.
type UpgradeState struct {
	// Version is the old binary's LocalVersion.
	Version int `json:"version"`
	// PID is the old supervisor's process id.
	PID int `json:"pid"`
	// NextGeneration is the number the new supervisor gives its first
	// generation.
	NextGeneration int `json:"next_generation"`
	// Draining lists the old supervisor's generations that still drain
	// besides the serving one.
	Draining []int `json:"draining,omitempty"`
	// Groups are the listening socket groups of the serving generation.
	Groups []SocketGroup `json:"groups"`
	// ControlPath is the control socket's path and ControlFD its listening
	// socket, -1 if the old supervisor has none.
	ControlPath string `json:"control_path,omitempty"`
	ControlFD   int    `json:"-"`
}

// SocketGroup is the listening sockets of one listener.
type SocketGroup struct {
	// Name is the listener's name; Key its configured address and
	// reuse_port, which a new config's listener must match to take the
	// group; Addr the bound address.
	Name string `json:"name"`
	Key  string `json:"key"`
	Addr string `json:"addr"`
	// Shared is set when every worker shares FDs[0] (reuse_port off).
	Shared bool `json:"shared"`
	// FDs are the sockets, one per worker slot unless Shared.
	FDs []int `json:"-"`
}

// UpgradeReady says that the new supervisor serves.
type UpgradeReady struct {
	PID        int `json:"pid"`
	Generation int `json:"generation"`
}

// upgradeStateWire is the JSON body of an UpgradeState message: the
// descriptors travel as SCM_RIGHTS and are referred to by index.
type upgradeStateWire struct {
	UpgradeState
	GroupFDs  [][]int `json:"group_fds"`
	ControlFD int     `json:"control_fd"`
}

// Message encodes h.
func (h UpgradeHello) Message() Message { return jsonMessage(TypeUpgradeHello, h) }

// Message encodes r.
func (r UpgradeReady) Message() Message { return jsonMessage(TypeUpgradeReady, r) }

// Message encodes st. The message refers to st's descriptors; it does not
// own them.
func (st UpgradeState) Message() Message {
	w := upgradeStateWire{UpgradeState: st, ControlFD: -1}
	var fds []int
	for _, g := range st.Groups {
		idx := make([]int, len(g.FDs))
		for i, fd := range g.FDs {
			idx[i] = len(fds)
			fds = append(fds, fd)
		}
		w.GroupFDs = append(w.GroupFDs, idx)
	}
	if st.ControlFD >= 0 {
		w.ControlFD = len(fds)
		fds = append(fds, st.ControlFD)
	}
	m := jsonMessage(TypeUpgradeState, w)
	m.FDs = fds
	return m
}

// ReasonMessage returns a message of type t (UpgradeRefused or
// UpgradeFailed) whose body is reason.
func ReasonMessage(t Type, reason string) Message {
	return Message{Type: t, Body: []byte(reason)}
}

// DecodeUpgradeHello decodes a TypeUpgradeHello message and closes any
// descriptor it carried.
func DecodeUpgradeHello(m Message) (UpgradeHello, error) {
	var h UpgradeHello
	err := decodeJSON(m, TypeUpgradeHello, &h)
	return h, err
}

// DecodeUpgradeReady decodes a TypeUpgradeReady message and closes any
// descriptor it carried.
func DecodeUpgradeReady(m Message) (UpgradeReady, error) {
	var r UpgradeReady
	err := decodeJSON(m, TypeUpgradeReady, &r)
	return r, err
}

// DecodeUpgradeState decodes a TypeUpgradeState message. The returned state
// owns the descriptors of m; on error they are all closed. Descriptors that
// nothing refers to are closed too.
func DecodeUpgradeState(m Message) (UpgradeState, error) {
	if m.Type != TypeUpgradeState {
		m.CloseFDs()
		return UpgradeState{}, fmt.Errorf("%w: want upgrade state, got %s", ErrProtocol, m.Type)
	}
	var w upgradeStateWire
	if err := json.Unmarshal(m.Body, &w); err != nil {
		m.CloseFDs()
		return UpgradeState{}, fmt.Errorf("%w: decode upgrade state: %v", ErrProtocol, err)
	}
	if len(w.GroupFDs) != len(w.Groups) {
		m.CloseFDs()
		return UpgradeState{}, fmt.Errorf("%w: upgrade state: %d groups, %d fd lists", ErrProtocol, len(w.Groups), len(w.GroupFDs))
	}
	used := make([]bool, len(m.FDs))
	take := func(i int) (int, error) {
		if i < 0 || i >= len(m.FDs) || used[i] {
			return -1, fmt.Errorf("%w: upgrade state refers to fd index %d of %d", ErrProtocol, i, len(m.FDs))
		}
		used[i] = true
		return m.FDs[i], nil
	}
	st := w.UpgradeState
	st.ControlFD = -1
	for gi := range st.Groups {
		g := &st.Groups[gi]
		g.FDs = nil
		for _, i := range w.GroupFDs[gi] {
			fd, err := take(i)
			if err != nil {
				m.CloseFDs()
				return UpgradeState{}, err
			}
			g.FDs = append(g.FDs, fd)
		}
		if len(g.FDs) == 0 {
			m.CloseFDs()
			return UpgradeState{}, fmt.Errorf("%w: upgrade state: listener %q has no socket", ErrProtocol, g.Name)
		}
	}
	if w.ControlFD >= 0 {
		fd, err := take(w.ControlFD)
		if err != nil {
			m.CloseFDs()
			return UpgradeState{}, err
		}
		st.ControlFD = fd
	}
	for i, u := range used {
		if !u {
			closeFD(m.FDs[i])
		}
	}
	return st, nil
}

// CloseFDs closes every descriptor of st.
func (st *UpgradeState) CloseFDs() {
	for i := range st.Groups {
		for _, fd := range st.Groups[i].FDs {
			closeFD(fd)
		}
		st.Groups[i].FDs = nil
	}
	if st.ControlFD >= 0 {
		closeFD(st.ControlFD)
		st.ControlFD = -1
	}
}

func jsonMessage(t Type, v any) Message {
	body, _ := json.Marshal(v) // plain structs of strings and numbers
	return Message{Type: t, Body: body}
}

func decodeJSON(m Message, t Type, v any) error {
	m.CloseFDs()
	if m.Type != t {
		return fmt.Errorf("%w: want %s, got %s", ErrProtocol, t, m.Type)
	}
	if err := json.Unmarshal(m.Body, v); err != nil {
		return fmt.Errorf("%w: decode %s: %v", ErrProtocol, t, err)
	}
	return nil
}
