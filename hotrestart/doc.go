// Package hotrestart is the control channel between sluice processes: the
// supervisor and each of its workers, and the running and the new
// supervisor during a binary upgrade (see upgrade.go for that protocol and
// its Version).
//
// A channel is one end of a socketpair(AF_UNIX, SOCK_SEQPACKET). The kernel
// keeps packet boundaries and delivers packets in order, so a packet is never
// split or merged; one logical Message (a Type, a body, and open file
// descriptors passed with SCM_RIGHTS) travels as one or more packets:
//
//	packet = header(8) chunk
//	header = version(1) type(1) flags(1) nfds(1) len(4, big endian)
//
// flags bit 0 ("more") says that further packets of the same message follow.
// A packet carries at most MaxFDsPerPacket descriptors (the kernel refuses
// more than 253 per sendmsg) and at most maxChunk bytes of body, so neither a
// large config nor thousands of sockets need special handling by callers.
// Descriptors are received with MSG_CMSG_CLOEXEC, so a process never leaks
// them into its own children.
//
// Message bodies are opaque to the framing. The typed messages of this
// package (Hello, and the bodiless Ready, Drain and Stop) encode theirs as
// JSON; later messages (an idle connection handed off with its read-ahead
// bytes, the upgrade messages; stats later) add a Type and a body without
// changing the framing. A
// receiver that meets a Type it does not know closes the message's
// descriptors and ignores it, so a newer peer can talk to an older one.
//
// Known failure modes: a peer that exits closes its end, and Recv returns
// io.EOF; descriptors that the receiver fails to take (its RLIMIT_NOFILE is
// reached) make the kernel truncate the control data, which Recv reports as
// an error after closing whatever did arrive.
package hotrestart
