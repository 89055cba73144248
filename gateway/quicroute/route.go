package quicroute

// Routing decisions. Only the invariant parts of a QUIC header are read
// (RFC 8999): the header form bit, and the destination connection id —
// at byte 1 with our fixed length for a short header, after the version
// and its length byte for a long one. Nothing here may panic, whatever
// the datagram (FuzzRoute).

// DestinationID returns the destination connection id of the first QUIC
// packet in datagram p, whether p has a long header, and false if p is too
// short to hold one. A short header's id is taken to be IDLen bytes long,
// the length of every id sluice issues.
func DestinationID(p []byte) (id []byte, long bool, ok bool) {
	if len(p) == 0 {
		return nil, false, false
	}
	if p[0]&0x80 == 0 { // short header
		if len(p) < 1+IDLen {
			return nil, false, false
		}
		return p[1 : 1+IDLen], false, true
	}
	// Long header: flags, version (4), DCID length, DCID.
	if len(p) < 6 {
		return nil, true, false
	}
	n := int(p[5])
	if len(p) < 6+n {
		return nil, true, false
	}
	return p[6 : 6+n], true, true
}

// Route says where a datagram goes: to the local quic.Transport, or to the
// worker named by To.
type Route struct {
	Forward bool
	To      Owner
}

// Decide routes datagram p received by the worker self. forwarded says p
// came from another worker rather than from the UDP socket. successor is
// the generation that replaced self's (its draining generation's newest),
// or -1 while self's generation serves.
//
//   - An id of sluice's that names another worker: forward to it, unless p
//     was forwarded already (the sender routed it by the same id; a second
//     hop would only loop).
//   - A long-header packet whose id is not sluice's opens a connection (the
//     client chose the id): while draining, forward it to the successor in
//     the same slot, which serves new connections. Generations only grow,
//     so a chain of such forwards ends.
//   - Everything else, including datagrams too short to parse, goes to the
//     local transport, which drops what it cannot use.
func Decide(self Owner, successor int64, p []byte, forwarded bool) Route {
	id, long, ok := DestinationID(p)
	if !ok {
		return Route{}
	}
	if o, mine := ParseID(id); mine {
		if o == self || forwarded {
			return Route{}
		}
		return Route{Forward: true, To: o}
	}
	if long && successor >= 0 {
		to := NewOwner(int(successor), int(self.Slot))
		if to != self {
			return Route{Forward: true, To: to}
		}
	}
	return Route{}
}
