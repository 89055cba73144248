package pool

import (
	"crypto/tls"
	"fmt"
	"testing"
)

// TestForServerNameKeepsOnePoolPerName checks that ForServerName returns
// the pool itself without auto_sni, for no name and for its own name; one
// child per other name, with that name in its TLS config; and that past
// maxServerNames the least recently used child is retired (closed) while
// recently used ones are kept.
func TestForServerNameKeepsOnePoolPerName(t *testing.T) {
	base := &tls.Config{ServerName: "default.example"}
	plain := New(Options{Address: "127.0.0.1:1", TLS: base})
	if plain.ForServerName("a.example") != plain {
		t.Fatal("a pool without ServerNameTLS made a child")
	}
	p := New(Options{Address: "127.0.0.1:1", TLS: base, ServerNameTLS: func(n string) *tls.Config {
		c := base.Clone()
		c.ServerName = n
		return c
	}})
	defer p.Close()
	if p.ForServerName("") != p || p.ForServerName("default.example") != p {
		t.Fatal("no name or the pool's own name did not give the pool itself")
	}
	a := p.ForServerName("a.example")
	if a == p || a.ServerName() != "a.example" || p.ForServerName("a.example") != a {
		t.Fatalf("child for a.example: %p (server name %q), parent %p", a, a.ServerName(), p)
	}
	first := p.ForServerName("n0.example")
	for i := 1; i < maxServerNames; i++ {
		p.ForServerName(fmt.Sprintf("n%d.example", i))
		p.ForServerName("a.example") // keep a.example recently used
	}
	if p.ForServerName("a.example") != a {
		t.Fatal("the recently used child was evicted")
	}
	first.mu.Lock()
	closed := first.closed
	first.mu.Unlock()
	if !closed {
		t.Fatal("the least recently used child was not retired past maxServerNames")
	}
	if got := p.ForServerName("n0.example"); got == first {
		t.Fatal("a retired child was handed out again")
	}
}
