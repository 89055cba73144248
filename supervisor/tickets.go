package supervisor

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/hotrestart"
)

// TLS session ticket keys: the supervisor makes them and every worker of
// every generation gets them in its Hello, so that a session resumes on any
// worker, after a reload, and (the keys go to the new supervisor) after an
// upgrade. The first key encrypts new tickets, all of them decrypt.
// Every server.ticket_key_rotation the supervisor makes a new first key,
// drops the oldest and sends the keys to every running worker (workers
// that start later get them in their Hello): a ticket stays valid for
// (ticketKeyCount-1) rotations at least, on every worker.
const ticketKeyCount = 3

// tickets are the ticket keys; owned by the event loop.
type tickets struct {
	keys    [][32]byte
	rotated time.Time // when keys[0] was made
	timer   *time.Timer
}

// newTickets makes ticketKeyCount random keys, or takes the inherited ones.
func newTickets(in *hotrestart.Inherited) (*tickets, error) {
	if in != nil && len(in.TicketKeys) > 0 {
		return &tickets{keys: in.TicketKeys, rotated: time.Unix(0, in.KeysRotated)}, nil
	}
	t := &tickets{keys: make([][32]byte, ticketKeyCount), rotated: time.Now()}
	for i := range t.keys {
		if _, err := rand.Read(t.keys[i][:]); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// scheduleRotation rotates the keys when the first one is ticketRotation
// old, and again every ticketRotation. Called by the loop.
func (s *Supervisor) scheduleRotation() {
	t := s.tickets
	d := max(time.Until(t.rotated.Add(s.cur.cfg.Server.TicketKeyRotation.Duration)), 0)
	t.timer = s.later(d, func() {
		var k [32]byte
		if _, err := rand.Read(k[:]); err != nil {
			s.log.Error("cannot make a ticket key", zap.Error(err))
		} else {
			t.keys = append([][32]byte{k}, t.keys[:min(len(t.keys), ticketKeyCount-1)]...)
			s.log.Info("TLS ticket keys rotated", zap.String("key", keyID(k)))
			s.broadcast(hotrestart.TicketKeysMessage(t.keys))
		}
		t.rotated = time.Now()
		s.scheduleRotation()
	})
}

// keyID names a ticket key in logs without revealing it: the first 8 hex
// digits of its SHA-256.
func keyID(k [32]byte) string {
	sum := sha256.Sum256(k[:])
	return hex.EncodeToString(sum[:4])
}
