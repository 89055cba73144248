// Package accesslog writes one line per HTTP stream (or tcp_proxy
// connection) in Envoy's access log format.
//
// A format string is compiled once, when a config generation is built
// (Compile, CompileJSON); Formatter.Format then appends a line to a caller's
// buffer without allocating. A Logger pairs a Formatter with a Sink. A Sink
// is a file (opened O_APPEND, so logrotate's "mv then reopen" works, and so
// several worker processes can append to the same file), standard output or
// standard error. Log never blocks on disk: lines go through a bounded
// channel to the sink's writer goroutine, which batches whole lines into
// each write(2); when the channel is full the line is dropped and counted.
//
// Concurrency: Formatter, Logger and Sink are safe for concurrent use.
// Sink.Reopen and Files.Reopen may be called from any goroutine (the
// SIGUSR1 handler, the admin /reopen_logs).
package accesslog
