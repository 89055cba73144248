package dns

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/fuzzcorpus"

	"golang.org/x/net/dns/dnsmessage"
)

var fuzzName = dnsmessage.MustNewName("svc.example.")

// FuzzReply feeds arbitrary datagrams to the reading of an answer, as a
// query for fuzzName whose id is the datagram's own (so that more inputs
// get past the header). It must never panic; an answer it takes must be
// for that query, and its addresses of the family asked for.
func FuzzReply(f *testing.F) {
	for _, s := range corpusSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		id := uint16(data[0])<<8 | uint16(data[1])
		for _, typ := range []dnsmessage.Type{dnsmessage.TypeA, dnsmessage.TypeAAAA} {
			addrs, _, ok, err := reply(data, id, fuzzName, typ, "fuzz")
			if !ok {
				if addrs != nil || err != nil {
					t.Fatalf("not an answer, yet %v %v", addrs, err)
				}
				continue
			}
			if len(data) < 12 || data[2]&0x80 == 0 {
				t.Fatalf("took %q as an answer: no response header", data)
			}
			if err != nil && addrs != nil {
				t.Fatalf("addresses %v with error %v", addrs, err)
			}
			for _, a := range addrs {
				if typ == dnsmessage.TypeA && !a.Is4() || typ == dnsmessage.TypeAAAA && !a.Is6() {
					t.Fatalf("%v in the answer to a %v query", a, typ)
				}
			}
		}
	})
}

// answer builds a response to query id for fuzzName with rcode and the
// given answer resources.
func answer(id uint16, q dnsmessage.Type, rcode dnsmessage.RCode, rrs ...dnsmessage.Resource) []byte {
	m := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, Response: true, RecursionAvailable: true, RCode: rcode},
		Questions: []dnsmessage.Question{{Name: fuzzName, Type: q, Class: dnsmessage.ClassINET}},
		Answers:   rrs,
	}
	b, err := m.Pack()
	if err != nil {
		panic(err)
	}
	return b
}

func rrA(name dnsmessage.Name, ttl uint32, a [4]byte) dnsmessage.Resource {
	return dnsmessage.Resource{Header: dnsmessage.ResourceHeader{Name: name, Class: dnsmessage.ClassINET, TTL: ttl}, Body: &dnsmessage.AResource{A: a}}
}

func rrAAAA(name dnsmessage.Name, ttl uint32, a [16]byte) dnsmessage.Resource {
	return dnsmessage.Resource{Header: dnsmessage.ResourceHeader{Name: name, Class: dnsmessage.ClassINET, TTL: ttl}, Body: &dnsmessage.AAAAResource{AAAA: a}}
}

// The seeds' ids are their first two bytes, as FuzzReply takes them.
const seedID = 0x1234

var target = dnsmessage.MustNewName("pod-1.svc.example.")

// corpusSeeds are the committed seeds of FuzzReply.
func corpusSeeds() map[string][]byte {
	cname := dnsmessage.Resource{Header: dnsmessage.ResourceHeader{Name: fuzzName, Class: dnsmessage.ClassINET, TTL: 300}, Body: &dnsmessage.CNAMEResource{CNAME: target}}
	a := answer(seedID, dnsmessage.TypeA, dnsmessage.RCodeSuccess, cname, rrA(target, 60, [4]byte{10, 0, 0, 1}), rrA(target, 30, [4]byte{10, 0, 0, 2}))
	tc := slices.Clone(a)
	tc[2] |= 0x02 // TC: the answer did not fit
	return map[string][]byte{
		"a_cname":    a,
		"tc":         tc,
		"aaaa":       answer(seedID, dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, rrAAAA(fuzzName, 120, [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1})),
		"nxdomain":   answer(seedID, dnsmessage.TypeA, dnsmessage.RCodeNameError),
		"servfail":   answer(seedID, dnsmessage.TypeAAAA, dnsmessage.RCodeServerFailure),
		"empty":      answer(seedID, dnsmessage.TypeA, dnsmessage.RCodeSuccess),
		"truncated":  a[:len(a)-3],
		"query":      append([]byte{0x12, 0x34, 0x01}, a[3:]...), // QR bit clear
		"short":      a[:7],
		"wrong_type": answer(seedID, dnsmessage.TypeA, dnsmessage.RCodeSuccess, rrAAAA(fuzzName, 60, [16]byte{15: 1})),
	}
}

// TestReplyReadsTheAnswerToItsQuery: the addresses of the answer section
// with the smallest TTL, a truncated answer as errTruncated (none of its
// addresses), NXDOMAIN as ErrNoAddresses, other codes as errors;
// a datagram for another query, or not a response, is not taken.
func TestReplyReadsTheAnswerToItsQuery(t *testing.T) {
	seeds := corpusSeeds()
	addrs, ttl, ok, err := reply(seeds["a_cname"], seedID, fuzzName, dnsmessage.TypeA, "s")
	if !ok || err != nil || ttl != 30 || !slices.Equal(addrs, []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}) {
		t.Fatalf("A through a CNAME: %v ttl %d ok %v err %v", addrs, ttl, ok, err)
	}
	addrs, ttl, ok, err = reply(seeds["aaaa"], seedID, fuzzName, dnsmessage.TypeAAAA, "s")
	if !ok || err != nil || ttl != 120 || !slices.Equal(addrs, []netip.Addr{netip.MustParseAddr("2001:db8::1")}) {
		t.Fatalf("AAAA: %v ttl %d ok %v err %v", addrs, ttl, ok, err)
	}
	if addrs, _, ok, err = reply(seeds["wrong_type"], seedID, fuzzName, dnsmessage.TypeA, "s"); !ok || err != nil || len(addrs) != 0 {
		t.Fatalf("an AAAA record in an A answer: %v ok %v err %v", addrs, ok, err)
	}
	if addrs, _, ok, err = reply(seeds["tc"], seedID, fuzzName, dnsmessage.TypeA, "s"); !ok || !errors.Is(err, errTruncated) || addrs != nil {
		t.Fatalf("a truncated answer: %v ok %v err %v, want errTruncated", addrs, ok, err)
	}
	if _, _, ok, err = reply(seeds["nxdomain"], seedID, fuzzName, dnsmessage.TypeA, "s"); !ok || !errors.Is(err, ErrNoAddresses) {
		t.Fatalf("NXDOMAIN: ok %v err %v", ok, err)
	}
	if _, _, ok, err = reply(seeds["servfail"], seedID, fuzzName, dnsmessage.TypeAAAA, "s"); !ok || err == nil || errors.Is(err, ErrNoAddresses) {
		t.Fatalf("SERVFAIL: ok %v err %v", ok, err)
	}
	if _, _, ok, err = reply(seeds["truncated"], seedID, fuzzName, dnsmessage.TypeA, "s"); !ok || err == nil {
		t.Fatalf("an answer section cut short: ok %v err %v", ok, err)
	}
	for _, c := range []struct {
		name string
		b    []byte
		id   uint16
		typ  dnsmessage.Type
	}{
		{"another query's id", seeds["a_cname"], seedID + 1, dnsmessage.TypeA},
		{"another type's question", seeds["a_cname"], seedID, dnsmessage.TypeAAAA},
		{"not a response", seeds["query"], seedID, dnsmessage.TypeA},
		{"shorter than a header", seeds["short"], seedID, dnsmessage.TypeA},
	} {
		if addrs, _, ok, err := reply(c.b, c.id, fuzzName, c.typ, "s"); ok || addrs != nil || err != nil {
			t.Errorf("%s: taken (%v, %v, %v)", c.name, addrs, ok, err)
		}
	}
	other := dnsmessage.MustNewName("other.example.")
	if _, _, ok, _ := reply(seeds["a_cname"], seedID, other, dnsmessage.TypeA, "s"); ok {
		t.Error("another name's question: taken")
	}
}

// TestWriteCorpus writes testdata/fuzz/FuzzReply when SLUICE_WRITE_CORPUS=1;
// otherwise it checks the committed seeds exist.
func TestWriteCorpus(t *testing.T) {
	fuzzcorpus.Sync(t, "FuzzReply", corpusSeeds())
}
