package hotrestart

import (
	"errors"
	"slices"
	"testing"
)

func TestClusterHostsTravelInHelloAndMessage(t *testing.T) {
	a, b := pair(t)
	h := Hello{Slot: 0, Generation: 1, StatsFD: -1, ClusterHosts: map[string][]string{"api": {"10.0.0.1:80", "10.0.0.2:80"}}}
	m, err := h.Message()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Send(m); err != nil {
		t.Fatal(err)
	}
	got, err := b.Recv()
	if err != nil {
		t.Fatal(err)
	}
	g, err := DecodeHello(got)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(g.ClusterHosts["api"], []string{"10.0.0.1:80", "10.0.0.2:80"}) {
		t.Errorf("hello cluster hosts = %v", g.ClusterHosts)
	}

	if err := a.Send(ClusterHosts{Cluster: "api", Hosts: []string{"10.0.0.3:80"}}.Message()); err != nil {
		t.Fatal(err)
	}
	got, err = b.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got.Type.String() != "cluster hosts" {
		t.Errorf("type = %s", got.Type)
	}
	ch, err := DecodeClusterHosts(got)
	if err != nil || ch.Cluster != "api" || !slices.Equal(ch.Hosts, []string{"10.0.0.3:80"}) {
		t.Errorf("cluster hosts = %+v, %v", ch, err)
	}
	if _, err := DecodeClusterHosts(Message{Type: TypeClusterHosts, Body: []byte(`{"hosts":[]}`)}); !errors.Is(err, ErrProtocol) {
		t.Errorf("no cluster: err = %v, want ErrProtocol", err)
	}
}
