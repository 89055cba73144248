// Package http2 is sluice's downstream HTTP/2 server connection (RFC 9113):
// the frame state machine, flow control in both directions, graceful
// shutdown and the request streams a handler serves. Frames are read with
// golang.org/x/net/http2's Framer (which also checks frame sizes, header
// block order and decodes HPACK) and written with hpack's Encoder.
//
// # Why not x/net/http2's Server
//
// x/net/http2's Server moves every event between goroutines: a reader
// goroutine hands each frame to the serve loop over a channel, the serve loop
// starts a handler goroutine, the handler's response head goes back to the
// serve loop, which starts one more goroutine to write it (a head is never
// written inline) while the handler waits for the write to finish, and the
// same again for the body. Under concurrent streams those hand-offs, its
// select per event and its per-response header map copies were most of the
// CPU sluice spent on an HTTP/2 request. Here the connection's goroutine
// reads and processes frames itself, a stream's handler goroutine encodes
// and queues its own frames under the connection's lock, and a response's
// head and body leave together in one write.
//
// # Concurrency
//
// Serve runs on the connection's goroutine and is the only reader. Each
// request runs its handler on a goroutine of its own. Conn.mu guards all
// connection and stream state and the HPACK encoder; frames are built under
// it and handed to the Transport's Write (which copies them and must not
// block for long: the coalescing writer of the connection manager). A
// handler blocked on flow control or waiting for request body bytes waits
// on its stream's condition variable, never holding the lock.
package http2
