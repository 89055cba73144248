// Package quicroute routes QUIC packets to the worker process that owns
// their connection.
//
// Every worker slot of a generation reads its own SO_REUSEPORT UDP socket,
// and a reload or an upgrade gives the new generation's workers the same
// sockets while the old generation drains: the kernel then spreads a
// connection's packets over processes that do not know it (two processes
// reading one socket, or a client whose address changed hashing to another
// slot). The connection ids this package generates name their owner (the
// generation and slot of the worker), and Conn, the PacketConn a worker's
// quic.Transport reads from, forwards each datagram whose destination
// connection id names another worker to that worker over a unix datagram
// socket, and delivers the datagrams forwarded to it. A draining
// generation also forwards the packets that open new connections to its
// successor in the same slot. See docs/ARCHITECTURE.md#http3.
package quicroute

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"

	"github.com/quic-go/quic-go"
)

// Connection id layout (IDLen bytes):
//
//	byte 0      marker (idMarker: the layout's version)
//	bytes 1-3   generation, mod 2^24, big endian
//	bytes 4-5   slot, big endian
//	bytes 6-13  random (crypto/rand)
const (
	// IDLen is the length of every connection id sluice issues.
	IDLen    = 14
	idMarker = 0x5c
	// MaxSlot is the largest slot an id can name.
	MaxSlot = 1<<16 - 1
	genMask = 1<<24 - 1
)

// Owner names the worker that owns a connection: its generation (mod
// 2^24, as the id carries it) and slot.
type Owner struct {
	Generation uint32
	Slot       uint16
}

// NewOwner returns the Owner of the worker of generation gen and slot.
func NewOwner(gen, slot int) Owner {
	return Owner{Generation: uint32(gen) & genMask, Slot: uint16(slot)}
}

func (o Owner) String() string { return fmt.Sprintf("generation %d slot %d", o.Generation, o.Slot) }

// ParseID returns the owner a connection id names, and false if id is not
// one of sluice's (wrong length or marker).
func ParseID(id []byte) (Owner, bool) {
	if len(id) != IDLen || id[0] != idMarker {
		return Owner{}, false
	}
	return Owner{
		Generation: uint32(id[1])<<16 | uint32(id[2])<<8 | uint32(id[3]),
		Slot:       binary.BigEndian.Uint16(id[4:6]),
	}, true
}

// Generator is the quic.ConnectionIDGenerator of a worker: every id names
// the worker's owner, the rest is random.
type Generator struct {
	owner Owner
}

var _ quic.ConnectionIDGenerator = (*Generator)(nil)

// NewGenerator returns the generator of ids owned by o.
func NewGenerator(o Owner) *Generator { return &Generator{owner: o} }

// GenerateConnectionID returns a new id naming the generator's owner.
func (g *Generator) GenerateConnectionID() (quic.ConnectionID, error) {
	var b [IDLen]byte
	g.owner.put(b[:])
	if _, err := rand.Read(b[6:]); err != nil {
		return quic.ConnectionID{}, fmt.Errorf("quicroute: connection id: %w", err)
	}
	return quic.ConnectionIDFromBytes(b[:]), nil
}

// ConnectionIDLen returns IDLen.
func (g *Generator) ConnectionIDLen() int { return IDLen }

// put writes the marker and o into the first 6 bytes of b.
func (o Owner) put(b []byte) {
	b[0] = idMarker
	b[1], b[2], b[3] = byte(o.Generation>>16), byte(o.Generation>>8), byte(o.Generation)
	binary.BigEndian.PutUint16(b[4:6], o.Slot)
}
