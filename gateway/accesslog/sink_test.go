package accesslog

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
)

type count struct{ n atomic.Int64 }

func (c *count) Inc() { c.n.Add(1) }

func line(s string) *[]byte {
	b := Buffer()
	*b = append(*b, s...)
	return b
}

func TestReopenAfterMove(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Write(line("before\n"))
	// Reopen is synchronous with the writer: everything queued before it is
	// written to the old file.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	s.Write(line("still old\n"))
	if err := s.Reopen(); err != nil {
		t.Fatal(err)
	}
	s.Write(line("after\n"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if string(old) != "before\nstill old\n" || string(cur) != "after\n" {
		t.Fatalf("rotated file %q, new file %q", old, cur)
	}
}

func TestFullQueueDropsWithoutBlocking(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// A reader that never reads: the writer blocks once the pipe is full.
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dropped := &count{}
	s, err := Open(fifo, Options{Queue: 4, BatchBytes: 4096, Dropped: dropped})
	if err != nil {
		t.Fatal(err)
	}
	l := NewLogger(mustCompile(t, "%REQ(:PATH)%"), s)
	rec := sampleRecord()
	rec.Request.Path = bytes.Repeat([]byte("x"), 1000)
	for i := 0; i < 1000; i++ { // 1 MB: far more than pipe, batch and queue hold
		l.Log(rec)
	}
	if s.Dropped() == 0 || uint64(dropped.n.Load()) != s.Dropped() {
		t.Fatalf("dropped %d, counter %d", s.Dropped(), dropped.n.Load())
	}
	// Unblock the writer so Close can finish.
	go io.Copy(io.Discard, r)
	s.Close()
}

func mustCompile(t *testing.T, f string) *Formatter {
	t.Helper()
	fm, err := Compile(f)
	if err != nil {
		t.Fatal(err)
	}
	return fm
}

func TestFilesShareAndReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	fs := NewFiles(Options{})
	defer fs.Close()
	l1, err := fs.Logger(&Config{Path: path, Format: "one %PROTOCOL%\n"})
	if err != nil {
		t.Fatal(err)
	}
	l2, err := fs.Logger(&Config{Path: path, JSONFormat: map[string]string{"p": "%PROTOCOL%"}})
	if err != nil {
		t.Fatal(err)
	}
	if l1.sink != l2.sink {
		t.Fatal("two loggers on one path got two sinks")
	}
	rec := sampleRecord()
	l1.Log(rec)
	os.Rename(path, path+".1")
	if err := fs.Reopen(); err != nil {
		t.Fatal(err)
	}
	l2.Log(rec)
	fs.Release(path)
	fs.Release(path) // closes the sink, flushing it
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if string(old) != "one HTTP/1.1\n" || string(cur) != "{\"p\":\"HTTP/1.1\"}\n" {
		t.Fatalf("old %q new %q", old, cur)
	}
}

func TestStdoutSink(t *testing.T) {
	s, err := Open("/dev/stderr", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reopen(); err != nil {
		t.Fatalf("reopen of a stream: %v", err)
	}
	s.Close()
	s.Write(line("dropped after close\n"))
	if s.Dropped() != 1 {
		t.Fatalf("write after close not dropped")
	}
}

func BenchmarkLog(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "bench.log"), Options{Queue: 1 << 16})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	f, _ := Compile("")
	l := NewLogger(f, s)
	rec := sampleRecord()
	b.ReportAllocs()
	for b.Loop() {
		l.Log(rec)
	}
}
