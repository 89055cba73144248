package hotrestart

import (
	"encoding/binary"
	"fmt"
)

// TypeHandoff carries one downstream connection between generations: from
// a draining worker to the supervisor, and from the supervisor to a worker of
// the serving generation, which serves it as if just accepted. One fd (the
// connection's socket); the body is a Handoff.
const TypeHandoff Type = 5

func init() { typeNames[TypeHandoff] = "handoff" }

// DrainWithHandoff is the body of a TypeDrain message that lets the worker
// hand its idle keep-alive connections to the serving generation through
// the supervisor (a reload or upgrade). An empty body (shutdown) means
// there is no generation to take them: they close.
var DrainWithHandoff = []byte{1}

// DrainHandoffTo is the body of a TypeDrain message that lets the worker
// hand its connections over (as DrainWithHandoff) and names the generation
// that replaced the worker's, to which its HTTP/3 listeners pass packets
// opening new QUIC connections.
func DrainHandoffTo(successor int) []byte {
	return binary.BigEndian.AppendUint32(append([]byte(nil), DrainWithHandoff...), uint32(successor))
}

// DecodeDrain decodes the body of a TypeDrain message: whether the worker
// may hand connections over, and the generation that replaced its own (0
// when unknown or at shutdown).
func DecodeDrain(body []byte) (handoff bool, successor int) {
	if len(body) == 0 || body[0] != DrainWithHandoff[0] {
		return false, 0
	}
	if len(body) >= 5 {
		successor = int(binary.BigEndian.Uint32(body[1:5]))
	}
	return true, successor
}

// Handoff is the body of a TypeHandoff message.
type Handoff struct {
	// Listener is the name of the listener that accepted the connection.
	Listener string
	// ReadAhead holds bytes read from the connection but not yet served.
	ReadAhead []byte
}

// Message returns h as a message carrying fd.
func (h *Handoff) Message(fd int) Message {
	b := make([]byte, 2, 2+len(h.Listener)+len(h.ReadAhead))
	binary.BigEndian.PutUint16(b, uint16(len(h.Listener)))
	b = append(append(b, h.Listener...), h.ReadAhead...)
	return Message{Type: TypeHandoff, Body: b, FDs: []int{fd}}
}

// DecodeHandoff decodes a TypeHandoff message. The caller still owns m.FDs.
func DecodeHandoff(m Message) (Handoff, error) {
	b := m.Body
	if m.Type != TypeHandoff || len(b) < 2 || len(m.FDs) != 1 {
		return Handoff{}, fmt.Errorf("%w: malformed handoff", ErrProtocol)
	}
	n := int(binary.BigEndian.Uint16(b))
	if 2+n > len(b) {
		return Handoff{}, fmt.Errorf("%w: malformed handoff", ErrProtocol)
	}
	return Handoff{Listener: string(b[2 : 2+n]), ReadAhead: b[2+n:]}, nil
}
