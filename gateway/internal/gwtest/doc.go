// Package gwtest runs the real sluice binary for end-to-end tests: it builds
// the binary once per test process, starts `sluice run -c` on a config
// written by the test, follows the JSON log lines the supervisor and its
// workers write, and stops the process tree when the test ends.
//
// A test package uses it from TestMain:
//
//	func TestMain(m *testing.M) { gwtest.Main(m) }
//
//	func TestX(t *testing.T) {
//		p := gwtest.Start(t, configText)
//		resp, err := http.Get("http://" + p.Addr("http") + "/")
//		...
//	}
//
// Configs given to Start bind 127.0.0.1:0; the chosen addresses are read
// from the supervisor's "listening" log lines.
package gwtest
