package plugin

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/sluice-proxy/sluice/plugins/authapi"
)

// attachment is one gRPC connection to one plugin process.
type attachment struct {
	ra    *Reattach // identity: the registry value it was dialled from
	grpc  *goplugin.GRPCClient
	authz authapi.Authorizer
}

// close closes the gRPC connection only: never go-plugin's Client.Kill or
// GRPCClient.Close, which would stop the plugin for every worker.
func (a *attachment) close() { _ = a.grpc.Conn.Close() }

// attach connects to the plugin process described by ra. What the plugin
// writes to os.Stdout and os.Stderr while serving (go-plugin redirects them
// to the clients attached) is logged on log.
func attach(name string, ra *Reattach, log *zap.Logger) (*attachment, error) {
	rc, err := ra.config()
	if err != nil {
		return nil, fmt.Errorf("plugin %q: reattach address: %w", name, err)
	}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  authapi.Handshake,
		Plugins:          authapi.PluginMap,
		Reattach:         rc,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
		SyncStdout:       outputWriter(log, name, "stdout"),
		SyncStderr:       outputWriter(log, name, "stderr"),
	})
	cp, err := client.Client()
	if err != nil {
		return nil, fmt.Errorf("plugin %q: attach to pid %d: %w", name, ra.Pid, err)
	}
	gc, ok := cp.(*goplugin.GRPCClient)
	if !ok {
		return nil, fmt.Errorf("plugin %q: not a gRPC plugin", name)
	}
	raw, err := gc.Dispense(authapi.PluginName)
	if err != nil {
		_ = gc.Conn.Close()
		return nil, fmt.Errorf("plugin %q: %w", name, err)
	}
	return &attachment{ra: ra, grpc: gc, authz: raw.(authapi.Authorizer)}, nil
}

// Attached is an Authorizer backed by a plugin process that this process
// attaches to but does not own. It dials on first use, and again after the
// connection failed (a gRPC Unavailable error on a connection no longer
// ready) or the plugin's Reattach info changed (the supervisor restarted
// it). It is safe for concurrent use.
//
// While the plugin is unreachable, Check fails fast with a gRPC Unavailable
// error, which filters treat as an authorization error (their failure mode).
type Attached struct {
	name   string
	log    func() *zap.Logger        // for the plugin's output; nil: none
	source *atomic.Pointer[Reattach] // latest known address; nil while unknown
	cur    atomic.Pointer[attachment]
	mu     sync.Mutex // serialises dialling
}

// Dial returns an Authorizer attached to the running plugin described by ra.
// It connects at once, so that an unreachable plugin is an error here; later
// failures are retried on the next Check. Closing it never stops the plugin.
func Dial(ra Reattach) (*Attached, error) {
	src := new(atomic.Pointer[Reattach])
	src.Store(&ra)
	a := &Attached{name: fmt.Sprintf("pid %d", ra.Pid), source: src}
	if _, err := a.current(); err != nil {
		return nil, err
	}
	return a, nil
}

// Check implements authapi.Authorizer.
func (a *Attached) Check(ctx context.Context, req *authapi.CheckRequest) (*authapi.CheckResponse, error) {
	at, err := a.current()
	if err != nil {
		return nil, err
	}
	resp, err := at.authz.Check(ctx, req)
	if err != nil && status.Code(err) == codes.Unavailable && at.grpc.Conn.GetState() != connectivity.Ready {
		// The connection failed. An Unavailable error the plugin itself
		// answered (its backend is down) leaves it Ready: dropping it then
		// would cancel every other check in flight on it.
		a.drop(at)
	}
	return resp, err
}

// Close closes the connection, if any; the plugin keeps running. A later
// Check dials again.
func (a *Attached) Close() error {
	if at := a.cur.Swap(nil); at != nil {
		at.close()
	}
	return nil
}

// current returns a live attachment to the latest known process.
func (a *Attached) current() (*attachment, error) {
	ra := a.source.Load()
	if at := a.cur.Load(); at != nil && at.ra == ra {
		return at, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ra = a.source.Load()
	at := a.cur.Load()
	if at != nil && at.ra == ra {
		return at, nil
	}
	if at != nil { // the plugin was restarted: its old process is gone
		a.cur.Store(nil)
		at.close()
	}
	if ra == nil {
		return nil, status.Errorf(codes.Unavailable, "plugin %q: not running", a.name)
	}
	var log *zap.Logger
	if a.log != nil {
		log = a.log()
	}
	at, err := attach(a.name, ra, log)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	a.cur.Store(at)
	return at, nil
}

// drop forgets at after a failure, so that the next Check dials again.
func (a *Attached) drop(at *attachment) {
	if a.cur.CompareAndSwap(at, nil) {
		at.close()
	}
}

var _ authapi.Authorizer = (*Attached)(nil)
