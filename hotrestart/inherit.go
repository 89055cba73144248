package hotrestart

import (
	"encoding/json"
	"fmt"
)

// Inherited is the body of a TypeStats message, which the old supervisor
// sends right after UpgradeState: the state besides sockets that the new
// supervisor carries on, so that counters never go backwards and TLS
// sessions resume across the upgrade.
type Inherited struct {
	// Regions are the stats regions in use, each with the worker slabs the
	// old supervisor's workers hold; the new supervisor leaves those slabs
	// alone until the old supervisor has exited.
	Regions []InheritedRegion
	// Epoch is the number of binary upgrades so far
	// (server.hot_restart_generation); the new supervisor's is Epoch+1.
	Epoch int
	// FirstStart is when the first supervisor of the chain started, in
	// Unix nanoseconds (uptime across all epochs).
	FirstStart int64
	// HealthCheckFailed is the admin /healthcheck/fail state.
	HealthCheckFailed bool
	// TicketKeys are the TLS session ticket keys (the first encrypts).
	TicketKeys [][32]byte
	// KeysRotated is when the first ticket key was made, in Unix
	// nanoseconds, so that rotation keeps its schedule.
	KeysRotated int64
	// AdminFD is the admin API's listening socket, -1 for none, and
	// AdminAddr its configured address: the new supervisor serves it from
	// its commit on if its config names the same address.
	AdminFD   int
	AdminAddr string
	// HostStateFD is the host-state region (health, outlier state,
	// breakers, token buckets), -1 or 0 for none; HostStateUsed are the
	// worker indexes of that region the old supervisor's workers hold,
	// which the new supervisor leaves alone until the old one has exited.
	HostStateFD   int
	HostStateUsed []int
}

// InheritedRegion is one stats region: its memfd (owned by the receiver
// after DecodeInherited), whether it is the serving generation's, and the
// worker slabs in use.
type InheritedRegion struct {
	FD      int
	Current bool
	Used    []int
}

type inheritedWire struct {
	Regions []struct {
		FD      int   `json:"fd"`
		Current bool  `json:"current"`
		Used    []int `json:"used"`
	} `json:"regions"`
	Epoch             int      `json:"epoch"`
	FirstStart        int64    `json:"first_start"`
	HealthCheckFailed bool     `json:"health_check_failed"`
	TicketKeys        [][]byte `json:"ticket_keys"`
	KeysRotated       int64    `json:"keys_rotated"`
	AdminFD           int      `json:"admin_fd"` // index into FDs, -1 for none
	AdminAddr         string   `json:"admin_addr,omitempty"`
	HostStateFD       *int     `json:"host_state_fd,omitempty"` // index into FDs
	HostStateUsed     []int    `json:"host_state_used,omitempty"`
}

// Message encodes in. The message refers to the regions' descriptors; it
// does not own them.
func (in Inherited) Message() Message {
	w := inheritedWire{Epoch: in.Epoch, FirstStart: in.FirstStart, HealthCheckFailed: in.HealthCheckFailed,
		KeysRotated: in.KeysRotated, AdminFD: -1, AdminAddr: in.AdminAddr}
	var fds []int
	for _, r := range in.Regions {
		w.Regions = append(w.Regions, struct {
			FD      int   `json:"fd"`
			Current bool  `json:"current"`
			Used    []int `json:"used"`
		}{len(fds), r.Current, r.Used})
		fds = append(fds, r.FD)
	}
	for _, k := range in.TicketKeys {
		w.TicketKeys = append(w.TicketKeys, k[:])
	}
	if in.AdminFD >= 0 {
		w.AdminFD = len(fds)
		fds = append(fds, in.AdminFD)
	}
	if in.HostStateFD > 0 {
		i := len(fds)
		w.HostStateFD, w.HostStateUsed = &i, in.HostStateUsed
		fds = append(fds, in.HostStateFD)
	}
	m := jsonMessage(TypeStats, w)
	m.FDs = fds
	return m
}

// DecodeInherited decodes a TypeStats message. The result owns the
// descriptors of m; on error they are all closed.
func DecodeInherited(m Message) (Inherited, error) {
	if m.Type != TypeStats {
		m.CloseFDs()
		return Inherited{}, fmt.Errorf("%w: want stats, got %s", ErrProtocol, m.Type)
	}
	var w inheritedWire
	if err := json.Unmarshal(m.Body, &w); err != nil {
		m.CloseFDs()
		return Inherited{}, fmt.Errorf("%w: decode stats: %v", ErrProtocol, err)
	}
	in := Inherited{Epoch: w.Epoch, FirstStart: w.FirstStart, HealthCheckFailed: w.HealthCheckFailed,
		KeysRotated: w.KeysRotated, AdminFD: -1, AdminAddr: w.AdminAddr, HostStateFD: -1, HostStateUsed: w.HostStateUsed}
	used := make([]bool, len(m.FDs))
	if w.AdminFD >= 0 {
		if w.AdminFD >= len(m.FDs) {
			m.CloseFDs()
			return Inherited{}, fmt.Errorf("%w: stats: admin listener refers to fd index %d of %d", ErrProtocol, w.AdminFD, len(m.FDs))
		}
		used[w.AdminFD] = true
		in.AdminFD = m.FDs[w.AdminFD]
	}
	if w.HostStateFD != nil {
		if i := *w.HostStateFD; i < 0 || i >= len(m.FDs) || used[i] {
			m.CloseFDs()
			in.AdminFD = -1
			return Inherited{}, fmt.Errorf("%w: stats: host-state region refers to fd index %d of %d", ErrProtocol, i, len(m.FDs))
		}
		used[*w.HostStateFD] = true
		in.HostStateFD = m.FDs[*w.HostStateFD]
	}
	for _, r := range w.Regions {
		if r.FD < 0 || r.FD >= len(m.FDs) || used[r.FD] {
			m.CloseFDs()
			in.AdminFD, in.HostStateFD = -1, -1
			return Inherited{}, fmt.Errorf("%w: stats: region refers to fd index %d of %d", ErrProtocol, r.FD, len(m.FDs))
		}
		used[r.FD] = true
		in.Regions = append(in.Regions, InheritedRegion{FD: m.FDs[r.FD], Current: r.Current, Used: r.Used})
	}
	for _, k := range w.TicketKeys {
		if len(k) != 32 {
			m.CloseFDs()
			in.AdminFD, in.HostStateFD = -1, -1
			return Inherited{}, fmt.Errorf("%w: stats: ticket key of %d bytes, want 32", ErrProtocol, len(k))
		}
		in.TicketKeys = append(in.TicketKeys, [32]byte(k))
	}
	for i, u := range used {
		if !u {
			closeFD(m.FDs[i])
		}
	}
	return in, nil
}

// CloseFDs closes every descriptor of in.
func (in *Inherited) CloseFDs() {
	if in.AdminFD >= 0 {
		closeFD(in.AdminFD)
		in.AdminFD = -1
	}
	if in.HostStateFD > 0 {
		closeFD(in.HostStateFD)
		in.HostStateFD = -1
	}
	for i := range in.Regions {
		if in.Regions[i].FD >= 0 {
			closeFD(in.Regions[i].FD)
			in.Regions[i].FD = -1
		}
	}
}
