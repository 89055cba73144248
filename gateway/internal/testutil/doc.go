// Package testutil holds loopback helpers for sluice's tests: real upstream
// servers on 127.0.0.1 port 0 that count what they see, upstreams that
// misbehave on cue, and addresses where nothing listens. Every helper calls
// t.Helper and registers its teardown with t.Cleanup.
package testutil
