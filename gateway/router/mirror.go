package router

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/buffer"
	"github.com/sluice-proxy/sluice/gateway/cluster"
	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/pool"
)

// Mirror is one of a route's request mirror policies (Envoy's
// RequestMirrorPolicy): a copy of the request goes to Cluster, fire and
// forget, with the authority's host suffixed "-shadow"; the response is
// discarded. It is immutable.
type Mirror struct {
	Cluster *cluster.Cluster
	// Fraction is the percentage of requests mirrored, in [0, 100].
	Fraction float64
}

// shadowTimeout bounds a mirrored exchange when the route has no timeout.
const shadowTimeout = 15 * time.Second

// shadow is a request being copied for the route's mirrors: its head,
// deep-copied, and its body while it fits the buffer limit.
type shadow struct {
	to      []*cluster.Cluster
	head    httpfilter.RequestHeaders
	body    []byte
	limit   int
	timeout time.Duration
	log     *zap.Logger
}

// newMirrors compiles a route's mirror policies against m.
func newMirrors(ps []config.RequestMirrorPolicy, m *cluster.Manager) ([]Mirror, error) {
	var out []Mirror
	for _, p := range ps {
		c := m.Get(p.Cluster)
		if c == nil {
			return nil, fmt.Errorf("request_mirror_policies: unknown cluster %q", p.Cluster)
		}
		out = append(out, Mirror{Cluster: c, Fraction: p.MirrorFraction()})
	}
	return out, nil
}

// startShadow decides which of the route's mirrors take this request and,
// if any, copies its head (after the route's rewrites). Called from
// DecodeHeaders; endStream sends the copy at once.
func (f *filter) startShadow(h *httpfilter.RequestHeaders, endStream bool) {
	rt := f.route
	var to []*cluster.Cluster
	for _, m := range rt.Mirrors {
		if m.Fraction >= 100 || (m.Fraction > 0 && rand.Float64()*100 < m.Fraction) {
			to = append(to, m.Cluster)
		}
	}
	if len(to) == 0 {
		return
	}
	s := &shadow{to: to, limit: config.DefaultBufferLimitBytes, timeout: rt.Timeout, log: f.log}
	if l := f.cluster.Cfg.PerConnectionBufferLimitBytes; l > 0 {
		s.limit = l
	}
	if s.timeout <= 0 {
		s.timeout = shadowTimeout
	}
	s.head.Method = clone(h.Method)
	s.head.Scheme = clone(h.Scheme)
	s.head.Path = clone(h.Path)
	s.head.Authority = shadowAuthority(h.Authority)
	for _, fl := range h.Fields {
		s.head.Fields = append(s.head.Fields, httpfilter.Field{Name: clone(fl.Name), Value: clone(fl.Value)})
	}
	if endStream {
		go s.send()
		return
	}
	f.shadow = s
}

// shadowData adds request body bytes to the copy; a body beyond the buffer
// limit abandons it. endStream sends it.
func (f *filter) shadowData(b *buffer.Buffer, endStream bool) {
	s := f.shadow
	if len(s.body)+b.Len() > s.limit {
		f.shadow = nil
		return
	}
	s.body = append(s.body, b.Bytes()...)
	if endStream {
		f.shadow = nil
		go s.send()
	}
}

// shadowTrailers ends the copy: trailers are not mirrored.
func (f *filter) shadowTrailers() {
	s := f.shadow
	f.shadow = nil
	go s.send()
}

// send performs the mirrored exchanges, one cluster after the other, and
// discards the responses. It runs on its own goroutine: the main request
// never waits for it, and its failures are only logged at debug level.
func (s *shadow) send() {
	for _, c := range s.to {
		if err := s.exchange(c); err != nil {
			if ce := s.log.Check(zap.DebugLevel, "mirrored request failed"); ce != nil {
				ce.Write(zap.String("cluster", c.Name), zap.Error(err))
			}
		}
	}
}

// exchange sends the copy to one host of c, over HTTP/1.1 or HTTP/2 as the
// cluster speaks to it, and reads the response to its end.
func (s *shadow) exchange(c *cluster.Cluster) error {
	c.Record.MarkTraffic()
	host, err := c.Pick(nil)
	if err != nil {
		return err
	}
	host.Begin()
	defer host.End()
	c.Stats.UpstreamRqTotal.Inc()
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	hp := host.Pool
	if tc := c.Cfg.TLS; tc != nil && tc.AutoSNI {
		hp = hp.ForServerName(http1.AuthorityHost(s.head.Authority))
	}
	proto := pool.HTTP1
	switch c.Cfg.Protocol {
	case "http2":
		proto = pool.HTTP2
	case "auto":
		if proto, err = hp.Negotiate(ctx); err != nil {
			return fmt.Errorf("router: mirror to %q: %w", c.Name, err)
		}
	}
	if proto == pool.HTTP2 {
		return s.exchangeH2(ctx, c, hp)
	}
	uc, err := hp.Get(ctx)
	if err != nil {
		return fmt.Errorf("router: mirror to %q: %w", c.Name, err)
	}
	ok := false
	defer func() {
		if ok {
			_ = uc.SetDeadline(time.Time{})
			hp.Put(uc)
		} else {
			uc.Close()
		}
	}()
	_ = uc.SetDeadline(time.Now().Add(s.timeout))
	framing, n := http1.NoBody, int64(-1)
	if len(s.body) > 0 || hasBodyMethod(s.head.Method) {
		framing, n = http1.ContentLength, int64(len(s.body))
	}
	uc.W = http1.AppendRequestHead(uc.W[:0], &s.head, framing, n, true)
	uc.W = append(uc.W, s.body...)
	_, err = uc.Write(uc.W)
	uc.W = uc.W[:0]
	if err != nil {
		return fmt.Errorf("router: mirror to %q: %w", c.Name, err)
	}
	var resp http1.Response
	for {
		if err := uc.R.ReadResponse(&resp, s.head.Method, nil); err != nil {
			return fmt.Errorf("router: mirror to %q: %w", c.Name, err)
		}
		if resp.Headers.Status >= 200 {
			break
		}
	}
	c.Stats.Response(resp.Headers.Status)
	if _, err := io.Copy(io.Discard, uc.R.BodyReader(resp.Framing, resp.ContentLength)); err != nil {
		return fmt.Errorf("router: mirror to %q: body: %w", c.Name, err)
	}
	ok = resp.KeepAlive
	return nil
}

// exchangeH2 sends the copy on the HTTP/2 connections of hp and reads the response to
// its end.
func (s *shadow) exchangeH2(ctx context.Context, c *cluster.Cluster, hp *pool.Pool) error {
	scheme := "http"
	if c.Cfg.TLS != nil {
		scheme = "https"
	}
	hasBody := len(s.body) > 0 || hasBodyMethod(s.head.Method)
	req, err := newH2Request(ctx, &s.head, scheme, hasBody)
	if err != nil {
		return fmt.Errorf("router: mirror to %q: %w", c.Name, err)
	}
	if hasBody {
		req.ContentLength = int64(len(s.body))
		req.Body = io.NopCloser(bytes.NewReader(s.body))
	}
	resp, err := hp.RoundTrip(req, c.Cfg.MaxRequestsPerConnection)
	if err != nil {
		return fmt.Errorf("router: mirror to %q: %w", c.Name, err)
	}
	defer resp.Body.Close()
	c.Stats.Response(resp.StatusCode)
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("router: mirror to %q: body: %w", c.Name, err)
	}
	return nil
}

// hasBodyMethod reports whether a request with method m is expected to
// carry a body (and so a content-length even when empty).
func hasBodyMethod(m []byte) bool {
	switch string(m) {
	case "POST", "PUT", "PATCH":
		return true
	}
	return false
}

// shadowAuthority is a as Envoy writes it for mirrors: "-shadow" appended
// to the host, before any port.
func shadowAuthority(a []byte) []byte {
	host, port, err := net.SplitHostPort(string(a))
	if err != nil {
		return append(clone(a), "-shadow"...)
	}
	return []byte(net.JoinHostPort(host+"-shadow", port))
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
