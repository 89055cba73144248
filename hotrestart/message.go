package hotrestart

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// Type identifies a control message. Values are part of the wire format:
// never renumber them, only add.
type Type uint8

// The message types. Bodies are described with each type.
const (
	// TypeHello goes from the supervisor to a new worker, first: the config, the
	// worker's slot and generation and its listening sockets (see Hello).
	TypeHello Type = 1
	// TypeReady goes from a worker to the supervisor once it accepts on every
	// listener. No body.
	TypeReady Type = 2
	// TypeDrain asks a worker to stop accepting, finish in-flight requests
	// within the drain timeout and exit. No body.
	TypeDrain Type = 3
	// TypeStop asks a worker to close everything and exit at once. No body.
	TypeStop Type = 4
)

var typeNames = map[Type]string{
	TypeHello: "hello",
	TypeReady: "ready",
	TypeDrain: "drain",
	TypeStop:  "stop",
}

// String returns the lowercase name of t, or "type(N)" for an unknown type.
func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// Message is one logical control message.
type Message struct {
	Type Type
	// Body is the type-specific payload; it may be empty.
	Body []byte
	// FDs are open file descriptors passed with the message. On Send the
	// caller keeps ownership (the kernel duplicates them into the peer); on
	// Recv the caller owns them and must close every one it does not keep
	// (CloseFDs).
	FDs []int
}

// CloseFDs closes every descriptor of m and forgets them.
func (m *Message) CloseFDs() {
	for _, fd := range m.FDs {
		closeFD(fd)
	}
	m.FDs = nil
}

// closeFD closes a received descriptor; there is nothing to do about an
// error.
func closeFD(fd int) { unix.Close(fd) }
