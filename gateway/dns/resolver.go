// Package dns resolves the hosts of strict_dns and logical_dns clusters and
// keeps them current without a reload. It carries its own small DNS client
// (A and AAAA over UDP with EDNS0, and over TCP for answers too large for
// UDP, to the servers of /etc/resolv.conf) because net.Resolver does not
// expose record TTLs, which respect_dns_ttl needs.
//
// Resolution runs once per sluice instance, in the supervisor, which
// pushes each new host set to its workers: N workers do not multiply DNS
// traffic by N, and every worker balances over the same host set.
package dns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// DefaultTimeout bounds one query to one server.
const DefaultTimeout = 5 * time.Second

// ErrNoAddresses is returned when a name exists but has no A or AAAA
// record, or does not exist.
var ErrNoAddresses = errors.New("dns: no addresses")

// Lookuper resolves a name to addresses and the smallest TTL among their
// records. Implementations are safe for concurrent use.
type Lookuper interface {
	Lookup(ctx context.Context, name string) ([]netip.Addr, time.Duration, error)
}

// Resolver is a minimal stub resolver. It is safe for concurrent use.
// It sends no search-domain variants: cluster endpoints are meant to be
// fully qualified. A truncated UDP answer is asked for again over TCP.
type Resolver struct {
	// Servers are "ip:port" addresses, tried in order.
	Servers []string
	// Timeout bounds one query to one server; 0 means DefaultTimeout.
	Timeout time.Duration
}

// ReadResolvConf returns the nameserver addresses of a resolv.conf file
// (port 53), or 127.0.0.1:53 if it names none, as the C library does.
func ReadResolvConf(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			if a, err := netip.ParseAddr(fields[1]); err == nil {
				out = append(out, netip.AddrPortFrom(a.WithZone(""), 53).String())
			}
		}
	}
	if len(out) == 0 {
		out = []string{"127.0.0.1:53"}
	}
	return out, nil
}

// Lookup returns name's IPv4 then IPv6 addresses and the smallest TTL of
// their records. An IP literal is returned as is with a zero TTL.
func (r *Resolver) Lookup(ctx context.Context, name string) ([]netip.Addr, time.Duration, error) {
	if a, err := netip.ParseAddr(name); err == nil {
		return []netip.Addr{a}, 0, nil
	}
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	qn, err := dnsmessage.NewName(name)
	if err != nil {
		return nil, 0, fmt.Errorf("dns: %q: %w", name, err)
	}
	var (
		addrs []netip.Addr
		ttl   uint32
		haveT bool
		errs  []error
	)
	for _, t := range []dnsmessage.Type{dnsmessage.TypeA, dnsmessage.TypeAAAA} {
		as, tt, err := r.query(ctx, qn, t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		addrs = append(addrs, as...)
		if len(as) > 0 && (!haveT || tt < ttl) {
			ttl, haveT = tt, true
		}
	}
	if len(addrs) == 0 {
		if len(errs) == 2 {
			return nil, 0, errors.Join(errs...)
		}
		return nil, 0, fmt.Errorf("%w for %s", ErrNoAddresses, name)
	}
	return addrs, time.Duration(ttl) * time.Second, nil
}

// query asks each server in turn for one record type.
func (r *Resolver) query(ctx context.Context, name dnsmessage.Name, t dnsmessage.Type) ([]netip.Addr, uint32, error) {
	if len(r.Servers) == 0 {
		return nil, 0, errors.New("dns: no servers")
	}
	var last error
	for _, s := range r.Servers {
		addrs, ttl, err := r.exchange(ctx, s, name, t)
		if err == nil {
			return addrs, ttl, nil
		}
		if errors.Is(err, ErrNoAddresses) {
			return nil, 0, err // an authoritative answer: no need to ask another
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, 0, last
}

// udpSize is the UDP payload the resolver advertises (EDNS0, RFC 6891) and
// reads: the DNS flag day 2020 value, which avoids IP fragmentation. An
// answer that does not fit comes back truncated and is asked again over
// TCP (RFC 7766), so a name with many addresses is never cut short.
const udpSize = 1232

// errTruncated is reply's answer to a response with the TC bit: the full
// answer must be asked for over TCP.
var errTruncated = errors.New("dns: truncated answer")

// exchange asks server for name's records of type t: over UDP, then over
// TCP when the UDP answer was truncated.
func (r *Resolver) exchange(ctx context.Context, server string, name dnsmessage.Name, t dnsmessage.Type) ([]netip.Addr, uint32, error) {
	timeout := r.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	id := uint16(rand.Uint32())
	msg := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: name, Type: t, Class: dnsmessage.ClassINET}},
	}
	var opt dnsmessage.ResourceHeader
	if err := opt.SetEDNS0(udpSize, dnsmessage.RCodeSuccess, false); err != nil {
		return nil, 0, fmt.Errorf("dns: packing query: %w", err)
	}
	msg.Additionals = []dnsmessage.Resource{{Header: opt, Body: &dnsmessage.OPTResource{}}}
	q, err := msg.Pack()
	if err != nil {
		return nil, 0, fmt.Errorf("dns: packing query: %w", err)
	}
	addrs, ttl, err := exchangeUDP(ctx, server, q, id, name, t)
	if errors.Is(err, errTruncated) {
		addrs, ttl, err = exchangeTCP(ctx, server, q, id, name, t)
		if errors.Is(err, errTruncated) {
			err = fmt.Errorf("dns: %s: truncated answer over TCP for %s", server, name)
		}
	}
	return addrs, ttl, err
}

// exchangeUDP sends query q (id) to server and reads datagrams until the
// answer to it comes or ctx ends.
func exchangeUDP(ctx context.Context, server string, q []byte, id uint16, name dnsmessage.Name, t dnsmessage.Type) ([]netip.Addr, uint32, error) {
	c, err := dial(ctx, "udp", server)
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()
	if _, err := c.Write(q); err != nil {
		return nil, 0, fmt.Errorf("dns: %s: %w", server, err)
	}
	buf := make([]byte, udpSize)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, 0, fmt.Errorf("dns: %s: %w", server, err)
		}
		if addrs, ttl, ok, err := reply(buf[:n], id, name, t, server); ok {
			return addrs, ttl, err
		}
		// not our answer: keep waiting until the deadline
	}
}

// dial connects to server over network ("udp" or "tcp") with ctx's
// deadline on every read and write.
func dial(ctx context.Context, network, server string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, server)
	if err != nil {
		return nil, fmt.Errorf("dns: %s over %s: %w", server, network, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	return c, nil
}

// exchangeTCP sends query q (id) to server over TCP, each message after
// its two-byte length (RFC 1035 §4.2.2), and reads the answer.
func exchangeTCP(ctx context.Context, server string, q []byte, id uint16, name dnsmessage.Name, t dnsmessage.Type) ([]netip.Addr, uint32, error) {
	c, err := dial(ctx, "tcp", server)
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()
	if _, err := c.Write(append([]byte{byte(len(q) >> 8), byte(len(q))}, q...)); err != nil {
		return nil, 0, fmt.Errorf("dns: %s over TCP: %w", server, err)
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, 0, fmt.Errorf("dns: %s over TCP: %w", server, err)
	}
	buf := make([]byte, int(l[0])<<8|int(l[1]))
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, 0, fmt.Errorf("dns: %s over TCP: %w", server, err)
	}
	addrs, ttl, ok, err := reply(buf, id, name, t, server)
	if !ok {
		return nil, 0, fmt.Errorf("dns: %s over TCP: not the answer to the query for %s", server, name)
	}
	return addrs, ttl, err
}

// reply reads datagram b as the answer to query id for name and t (A or
// AAAA) from server. ok is false when b is not that answer (not a DNS
// response, another query's, or unreadable before its question); then
// the caller waits for the next datagram. The bytes come from the network:
// anything may be in them.
func reply(b []byte, id uint16, name dnsmessage.Name, t dnsmessage.Type, server string) (addrs []netip.Addr, ttl uint32, ok bool, err error) {
	var p dnsmessage.Parser
	h, err := p.Start(b)
	if err != nil || h.ID != id || !h.Response {
		return nil, 0, false, nil
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 || qs[0].Type != t || !strings.EqualFold(qs[0].Name.String(), name.String()) {
		return nil, 0, false, nil
	}
	switch h.RCode {
	case dnsmessage.RCodeSuccess:
		if h.Truncated {
			return nil, 0, true, errTruncated
		}
	case dnsmessage.RCodeNameError:
		return nil, 0, true, fmt.Errorf("%w for %s (NXDOMAIN)", ErrNoAddresses, name)
	default:
		return nil, 0, true, fmt.Errorf("dns: %s: %s for %s", server, h.RCode, name)
	}
	addrs, ttl, err = answers(&p, t)
	return addrs, ttl, true, err
}

// answers collects the A or AAAA records of an answer section (following
// CNAMEs is implicit: a recursive server puts the target's records there).
func answers(p *dnsmessage.Parser, t dnsmessage.Type) ([]netip.Addr, uint32, error) {
	var out []netip.Addr
	var ttl uint32
	for {
		h, err := p.AnswerHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("dns: bad answer: %w", err)
		}
		if h.Type != t || h.Class != dnsmessage.ClassINET {
			if err := p.SkipAnswer(); err != nil {
				return nil, 0, fmt.Errorf("dns: bad answer: %w", err)
			}
			continue
		}
		var a netip.Addr
		switch t {
		case dnsmessage.TypeA:
			r, err := p.AResource()
			if err != nil {
				return nil, 0, fmt.Errorf("dns: bad answer: %w", err)
			}
			a = netip.AddrFrom4(r.A)
		default:
			r, err := p.AAAAResource()
			if err != nil {
				return nil, 0, fmt.Errorf("dns: bad answer: %w", err)
			}
			a = netip.AddrFrom16(r.AAAA)
		}
		if len(out) == 0 || h.TTL < ttl {
			ttl = h.TTL
		}
		out = append(out, a)
	}
	return out, ttl, nil
}
