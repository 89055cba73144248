package health

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// verdict is the outcome of one check.
type verdict uint8

const (
	pass verdict = iota
	// fail is a network failure (no connection, no answer, a broken or
	// late one): it counts towards unhealthy_threshold.
	fail
	// activeFail is an answer that says the host is not well (an HTTP
	// status outside expected_statuses, a gRPC status other than
	// SERVING): as in Envoy (FailureType ACTIVE), it fails a healthy host
	// at once, whatever unhealthy_threshold.
	activeFail
	immediateFail // x-envoy-immediate-health-check-fail
)

// prober checks one host. probe is called from the host's goroutine only;
// close releases what the prober holds.
type prober interface {
	probe(ctx context.Context) verdict
	close()
}

type httpProber struct {
	addr, host, path string
	expected         [][2]int
}

func (p *httpProber) probe(ctx context.Context) verdict {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return fail
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-health-check\r\nConnection: close\r\n\r\n", p.path, p.host)
	if _, err := io.WriteString(c, req); err != nil {
		return fail
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return fail
	}
	resp.Body.Close()
	if resp.Header.Get("x-envoy-immediate-health-check-fail") != "" {
		return immediateFail
	}
	for _, r := range p.expected {
		if resp.StatusCode >= r[0] && resp.StatusCode < r[1] {
			return pass
		}
	}
	return activeFail
}

func (p *httpProber) close() {}

type tcpProber struct {
	addr    string
	send    []byte
	receive [][]byte
}

func (p *tcpProber) probe(ctx context.Context) verdict {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return fail
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if len(p.send) > 0 {
		if _, err := c.Write(p.send); err != nil {
			return fail
		}
	}
	if len(p.receive) == 0 {
		return pass
	}
	var got []byte
	buf := make([]byte, 4096)
	for len(got) < 64<<10 {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if all(got, p.receive) {
			return pass
		}
		if err != nil {
			return fail
		}
	}
	return fail
}

// all reports whether every block appears in b (Envoy's fuzzy match).
func all(b []byte, blocks [][]byte) bool {
	for _, x := range blocks {
		if !bytes.Contains(b, x) {
			return false
		}
	}
	return true
}

func (p *tcpProber) close() {}

type grpcProber struct {
	conn    *grpc.ClientConn
	client  healthpb.HealthClient
	service string
}

func newGRPCProber(addr, authority, service string) (*grpcProber, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(authority))
	if err != nil {
		return nil, fmt.Errorf("health: grpc client for %s: %w", addr, err)
	}
	return &grpcProber{conn: conn, client: healthpb.NewHealthClient(conn), service: service}, nil
}

func (p *grpcProber) probe(ctx context.Context) verdict {
	resp, err := p.client.Check(ctx, &healthpb.HealthCheckRequest{Service: p.service})
	if err != nil {
		switch status.Code(err) {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
			return fail // no connection or no answer
		}
		return activeFail // the server answered the RPC with an error status
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return activeFail
	}
	return pass
}

func (p *grpcProber) close() { p.conn.Close() }

// probeContext bounds one probe by the check's timeout.
func probeContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, timeout)
}
