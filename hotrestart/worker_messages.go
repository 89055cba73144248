package hotrestart

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// Messages between the supervisor and its running workers, besides Ready,
// Drain, Stop and Handoff.
const (
	// TypeLogLevel sets a worker's log level (the admin /logging). Body:
	// the level's name ("debug", "info", "warn", "error").
	TypeLogLevel Type = 13
	// TypeReopenLogs makes a worker reopen its access log files (SIGUSR1,
	// sluice reopen-logs, the admin /reopen_logs). No body.
	TypeReopenLogs Type = 14
	// TypeClusterHosts gives a DNS cluster's new host set, resolved by the
	// supervisor. Body: ClusterHosts as JSON.
	TypeClusterHosts Type = 15
	// TypeTicketKeys gives the TLS session ticket keys after a rotation
	// (the first encrypts, all decrypt). Body: TicketKeys as JSON.
	TypeTicketKeys Type = 16
	// TypeStopAccepting asks a worker to stop accepting connections and
	// serve those it has as before, undrained; it answers with
	// TypeStoppedAccepting. The supervisor retiring a generation sends it to
	// every worker of it and only then TypeDrain, so that no client a drain
	// sends away is accepted by a worker of the same generation. No body.
	TypeStopAccepting Type = 17
	// TypeStoppedAccepting goes from a worker to the supervisor when it has
	// stopped accepting after TypeStopAccepting. No body.
	TypeStoppedAccepting Type = 18
	// TypeSuccessor names the generation that is starting to replace the
	// worker's own (a reload's new generation, or an upgrade's new
	// supervisor's first): from then on the worker's HTTP/3 listeners pass
	// packets opening new QUIC connections to that generation's worker of
	// the same slot once it exists, and keep them until it does. The
	// workers of a slot share its UDP socket across generations, so
	// without it a connection could open on the old worker in the moments
	// before its drain, or be split between the two. Body: SuccessorBody;
	// generation 0 (a failed reload or upgrade) withdraws it.
	TypeSuccessor Type = 19
	// TypeStartFailed goes from a worker to the supervisor when it cannot
	// start (a file its config names cannot be opened, say), just before
	// it exits: the supervisor then gives that reason to whoever asked for
	// the start, reload or upgrade. Body: the error's text.
	TypeStartFailed Type = 20
)

// MaxStartFailedBody bounds the body of a TypeStartFailed message.
const MaxStartFailedBody = 4 << 10

// SuccessorBody is the body of a TypeSuccessor message for generation gen
// (0: none).
func SuccessorBody(gen int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(gen)) }

// DecodeSuccessor decodes the body of a TypeSuccessor message.
func DecodeSuccessor(body []byte) (gen int, err error) {
	if len(body) != 4 {
		return 0, fmt.Errorf("hotrestart: successor body of %d bytes, want 4", len(body))
	}
	return int(binary.BigEndian.Uint32(body)), nil
}

func init() {
	typeNames[TypeLogLevel] = "log level"
	typeNames[TypeReopenLogs] = "reopen logs"
	typeNames[TypeClusterHosts] = "cluster hosts"
	typeNames[TypeTicketKeys] = "ticket keys"
	typeNames[TypeStopAccepting] = "stop accepting"
	typeNames[TypeStoppedAccepting] = "stopped accepting"
	typeNames[TypeSuccessor] = "successor"
	typeNames[TypeStartFailed] = "start failed"
}

// TicketKeys is the body of a TypeTicketKeys message.
type TicketKeys struct {
	Keys [][]byte `json:"keys"`
}

// TicketKeysMessage encodes keys as a TypeTicketKeys message.
func TicketKeysMessage(keys [][32]byte) Message {
	t := TicketKeys{Keys: make([][]byte, len(keys))}
	for i := range keys {
		t.Keys[i] = keys[i][:]
	}
	return jsonMessage(TypeTicketKeys, t)
}

// DecodeTicketKeys decodes a TypeTicketKeys message: at least one key, each
// of 32 bytes.
func DecodeTicketKeys(m Message) ([][32]byte, error) {
	var t TicketKeys
	if err := decodeJSON(m, TypeTicketKeys, &t); err != nil {
		return nil, err
	}
	if len(t.Keys) == 0 {
		return nil, fmt.Errorf("%w: ticket keys message without keys", ErrProtocol)
	}
	keys := make([][32]byte, len(t.Keys))
	for i, k := range t.Keys {
		if len(k) != 32 {
			return nil, fmt.Errorf("%w: ticket key %d has %d bytes, want 32", ErrProtocol, i, len(k))
		}
		keys[i] = [32]byte(k)
	}
	return keys, nil
}

// ClusterHosts is the body of a TypeClusterHosts message: the addresses
// ("ip:port") the named DNS cluster now resolves to.
type ClusterHosts struct {
	Cluster string   `json:"cluster"`
	Hosts   []string `json:"hosts"`
}

// Message encodes c as a TypeClusterHosts message.
func (c ClusterHosts) Message() Message { return jsonMessage(TypeClusterHosts, c) }

// DecodeClusterHosts decodes a TypeClusterHosts message and closes any
// descriptor it carried.
func DecodeClusterHosts(m Message) (ClusterHosts, error) {
	var c ClusterHosts
	if err := decodeJSON(m, TypeClusterHosts, &c); err != nil {
		return ClusterHosts{}, err
	}
	if c.Cluster == "" {
		return ClusterHosts{}, fmt.Errorf("%w: cluster hosts without a cluster", ErrProtocol)
	}
	return c, nil
}

// PluginReattach is the body of a TypePluginReattach message sent to a
// worker: where the named plugin's process now runs (go-plugin reattach
// info, JSON), or, when Reattach is empty, that the plugin is gone.
type PluginReattach struct {
	Name     string          `json:"name"`
	Reattach json.RawMessage `json:"reattach,omitempty"`
}

// Message encodes p as a TypePluginReattach message.
func (p PluginReattach) Message() Message { return jsonMessage(TypePluginReattach, p) }

// DecodePluginReattach decodes a TypePluginReattach message and closes any
// descriptor it carried.
func DecodePluginReattach(m Message) (PluginReattach, error) {
	var p PluginReattach
	if err := decodeJSON(m, TypePluginReattach, &p); err != nil {
		return PluginReattach{}, err
	}
	if p.Name == "" {
		return PluginReattach{}, fmt.Errorf("%w: plugin reattach without a name", ErrProtocol)
	}
	return p, nil
}
