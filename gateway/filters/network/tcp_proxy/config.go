// Package tcpproxy is the terminal network filter sluice.filters.network.tcp_proxy:
// it connects each downstream connection to a host of an upstream cluster
// and copies bytes both ways until both directions have ended, with Envoy's
// tcp_proxy semantics (half-close, idle timeout, connect attempts, weighted
// clusters). See README.md.
package tcpproxy

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/accesslog"
	"github.com/sluice-proxy/sluice/gateway/cluster"
	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/lb"
	"github.com/sluice-proxy/sluice/gateway/registry"
	"github.com/sluice-proxy/sluice/gateway/stats"
)

// Name is the filter's registered name.
const Name = "sluice.filters.network.tcp_proxy"

// DefaultIdleTimeout closes a connection on which no byte moved in either
// direction for this long, as in Envoy.
const DefaultIdleTimeout = time.Hour

// MaxConnectAttempts bounds max_connect_attempts.
const MaxConnectAttempts = 100

func init() {
	registry.Register(registry.Info{
		Name:     Name,
		Kind:     registry.Network,
		Terminal: true,
		New:      func() registry.Config { return &Config{} },
	})
}

// Config is the filter's TOML table.
type Config struct {
	// StatPrefix names the filter's stats: tcp.<stat_prefix>.*. Required.
	StatPrefix string `toml:"stat_prefix"`
	// Cluster is the upstream cluster. Exactly one of Cluster and
	// WeightedClusters is required.
	Cluster string `toml:"cluster"`
	// WeightedClusters spreads connections over several clusters, each
	// chosen with probability weight / sum of weights.
	WeightedClusters []WeightedCluster `toml:"weighted_clusters"`
	// IdleTimeout closes the connection when no byte moved in either
	// direction for this long. Default 1h; "0s" disables it.
	IdleTimeout *config.Duration `toml:"idle_timeout"`
	// MaxConnectAttempts is how many hosts are tried, each picked afresh
	// by the cluster's load balancer, before the downstream connection is
	// closed. Default 1.
	MaxConnectAttempts int `toml:"max_connect_attempts"`
	// AccessLog lists where each finished connection is logged (Envoy's
	// tcp_proxy access_log), with the connection manager's formats:
	// %DOWNSTREAM_REMOTE_ADDRESS%, %UPSTREAM_HOST%, %UPSTREAM_CLUSTER%,
	// %BYTES_RECEIVED%, %BYTES_SENT%, %DURATION%, %RESPONSE_FLAGS% (UH,
	// UF, SI), %START_TIME%, %REQUESTED_SERVER_NAME%; HTTP operators print
	// "-".
	AccessLog []accesslog.Config `toml:"access_log"`
}

// WeightedCluster is one entry of weighted_clusters.
type WeightedCluster struct {
	// Name is the cluster's name.
	Name string `toml:"name"`
	// Weight is the cluster's share; 0 sends it nothing.
	Weight int `toml:"weight"`
}

// maxWeight bounds one weight, so that their sum cannot overflow.
const maxWeight = 1 << 20

// target is a resolved cluster with its cumulative weight.
type target struct {
	name string
	// pick chooses a host; r carries the connection's original
	// destination (for original_dst clusters).
	pick           func(r *lb.Request) (*cluster.Host, error)
	connectTimeout time.Duration
	cum            int
	// cs are the cluster's own stats (cluster.<name>.upstream_cx_*), which
	// count the connections tcp_proxy makes as Envoy's connection pools
	// do; nil outside a generation.
	cs *stats.ClusterStats
}

// Build implements registry.Config. It resolves the cluster names against
// the generation's clusters, in a dry run too, so that a config naming an
// unknown cluster fails validation.
func (c *Config) Build(ctx *registry.BuildContext) (any, error) {
	clusters, _ := ctx.Clusters.(*cluster.Manager)
	if clusters == nil {
		return nil, fmt.Errorf("tcp_proxy: no cluster manager in the build context")
	}
	slab, _ := ctx.Stats.(*stats.Slab)
	f, err := c.build(ctx.Logger, func(name string) (target, bool) {
		cl := clusters.Get(name)
		if cl == nil {
			return target{}, false
		}
		t := target{name: cl.Name, pick: cl.Pick}
		if cl.Cfg != nil {
			t.connectTimeout = cl.Cfg.ConnectTimeout.Duration
		}
		t.cs = cl.Stats
		return t, true
	})
	if err != nil {
		return nil, err
	}
	f.stats = newStats(slab, c.StatPrefix)
	loggers, err := accesslog.Build(c.AccessLog, ctx.AccessLogs, ctx.DryRun)
	if err != nil {
		return nil, err
	}
	if len(loggers) > 0 {
		f.onEnd = func(s *Session) { logSession(loggers, s) }
	}
	return f, nil
}

// logSession writes the access log lines of a finished connection.
func logSession(loggers []*accesslog.Logger, s *Session) {
	info := httpfilter.StreamInfo{
		ConnectionID:     s.ConnID,
		Start:            s.Start,
		DownstreamRemote: s.Remote,
		DownstreamLocal:  s.Local,
		ServerName:       s.ServerName,
		UpstreamCluster:  s.Cluster,
		UpstreamHost:     s.UpstreamHost,
		BytesReceived:    int64(s.RxBytes),
		BytesSent:        int64(s.TxBytes),
		ResponseFlags:    s.Flags(),
	}
	rec := accesslog.Record{Info: &info, Duration: s.Duration}
	for _, lg := range loggers {
		lg.Log(&rec)
	}
}

// StatDefs implements stats.FilterStats: tcp.<stat_prefix>.*, Envoy's names.
func (c *Config) StatDefs(string) []stats.Def {
	defs := make([]stats.Def, len(statNames))
	for i, n := range statNames {
		defs[i] = stats.Def{Name: "tcp." + c.StatPrefix + "." + n, Kind: stats.KindCounter}
	}
	return defs
}

// build validates c and returns its factory; lookup resolves cluster names.
func (c *Config) build(log *zap.Logger, lookup func(name string) (target, bool)) (*Factory, error) {
	if c.StatPrefix == "" {
		return nil, registry.Errorf("stat_prefix", "required")
	}
	if log == nil {
		log = zap.NewNop()
	}
	f := &Factory{
		stats:       newStats(nil, c.StatPrefix),
		statPrefix:  c.StatPrefix,
		idleTimeout: DefaultIdleTimeout,
		attempts:    1,
		log:         log,
	}
	if c.IdleTimeout != nil {
		if c.IdleTimeout.Duration < 0 {
			return nil, registry.Errorf("idle_timeout", "must be >= 0")
		}
		f.idleTimeout = c.IdleTimeout.Duration
	}
	if c.MaxConnectAttempts != 0 {
		if c.MaxConnectAttempts < 1 || c.MaxConnectAttempts > MaxConnectAttempts {
			return nil, registry.Errorf("max_connect_attempts", "must be in 1..%d", MaxConnectAttempts)
		}
		f.attempts = c.MaxConnectAttempts
	}
	switch {
	case c.Cluster != "" && len(c.WeightedClusters) > 0:
		return nil, registry.Errorf("cluster", "cluster and weighted_clusters are exclusive")
	case c.Cluster != "":
		t, ok := lookup(c.Cluster)
		if !ok {
			return nil, registry.Errorf("cluster", "cluster %q does not exist", c.Cluster)
		}
		t.cum = 1
		f.targets = []target{t}
	case len(c.WeightedClusters) > 0:
		sum := 0
		for i, wc := range c.WeightedClusters {
			key := fmt.Sprintf("weighted_clusters[%d]", i)
			t, ok := lookup(wc.Name)
			if !ok {
				return nil, registry.Errorf(key+".name", "cluster %q does not exist", wc.Name)
			}
			if wc.Weight < 0 || wc.Weight > maxWeight {
				return nil, registry.Errorf(key+".weight", "must be in 0..%d", maxWeight)
			}
			if wc.Weight == 0 {
				continue
			}
			sum += wc.Weight
			t.cum = sum
			f.targets = append(f.targets, t)
		}
		if sum == 0 {
			return nil, registry.Errorf("weighted_clusters", "the weights sum to 0")
		}
	default:
		return nil, registry.Errorf("cluster", "one of cluster and weighted_clusters is required")
	}
	return f, nil
}
