package gwtest

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestLogBookParsesJSONLinesAndKeepsAll(t *testing.T) {
	b := newLogBook()
	b.feed(strings.NewReader("plain text\n{\"msg\":\"worker started\",\"slot\":1,\"pid\":42}\n{broken\n"))
	if got := b.tail(10); len(got) != 3 {
		t.Fatalf("kept %d lines, want 3: %q", len(got), got)
	}
	es := b.snapshot()
	if len(es) != 1 || es[0].Msg() != "worker started" {
		t.Fatalf("entries %v, want the one JSON line", es)
	}
	if pid, ok := es[0].Int("pid"); !ok || pid != 42 {
		t.Errorf("pid %d %v, want 42", pid, ok)
	}
}

func TestLogBookWaitSeesLaterLinesAndGivesUpAtEOF(t *testing.T) {
	b := newLogBook()
	pr, pw := io.Pipe()
	go b.feed(pr)
	got := make(chan Entry, 1)
	go func() {
		got <- b.wait(0, "ready", func(e Entry) bool { return e.Str("x") == "2" }, time.Now().Add(10*time.Second))
	}()
	io.WriteString(pw, "{\"msg\":\"ready\",\"x\":\"1\"}\n{\"msg\":\"ready\",\"x\":\"2\"}\n")
	if e := <-got; e == nil || e.Str("x") != "2" {
		t.Fatalf("wait returned %v, want the second ready line", e)
	}
	pw.Close()
	if e := b.wait(b.mark(), "never", nil, time.Now().Add(10*time.Second)); e != nil {
		t.Fatalf("wait after EOF returned %v, want nil", e)
	}
}
