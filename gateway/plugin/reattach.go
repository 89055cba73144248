package plugin

import (
	"net"

	goplugin "github.com/hashicorp/go-plugin"
)

// Reattach is what a worker needs to connect to a running plugin. It is
// plain data, serialisable to JSON, passed from the supervisor to workers.
type Reattach struct {
	// Network and Addr are the plugin's gRPC listening address ("unix" and
	// a socket path).
	Network string `json:"network"`
	Addr    string `json:"addr"`
	// Pid is the plugin's process id.
	Pid int `json:"pid"`
	// ProtocolVersion is the negotiated go-plugin protocol version.
	ProtocolVersion int `json:"protocol_version"`
}

// config returns the go-plugin form. Test stays false: sluice's plugins are
// real processes, and attachers never call Kill anyway.
func (r Reattach) config() (*goplugin.ReattachConfig, error) {
	var addr net.Addr
	var err error
	switch r.Network {
	case "unix":
		addr, err = net.ResolveUnixAddr("unix", r.Addr)
	default:
		addr, err = net.ResolveTCPAddr(r.Network, r.Addr)
	}
	if err != nil {
		return nil, err
	}
	return &goplugin.ReattachConfig{
		Protocol:        goplugin.ProtocolGRPC,
		ProtocolVersion: r.ProtocolVersion,
		Addr:            addr,
		Pid:             r.Pid,
	}, nil
}
