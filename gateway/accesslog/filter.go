package accesslog

import (
	"fmt"
	"time"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/grpcwire"
	"github.com/sluice-proxy/sluice/gateway/internal/headermatch"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// Filter is Envoy's AccessLogFilter as a TOML table: which records a log
// writes. Exactly one key is set; and_filter and or_filter nest filters.
//
//	[listener.filter_chain.filter.config.access_log.filter]
//	or_filter = { filters = [
//	  { status_code_filter = { op = "GE", value = 500 } },
//	  { duration_filter = { op = "GE", value = 1000 } },
//	] }
type Filter struct {
	// StatusCode compares the response code (0 when none was sent).
	StatusCode *Comparison `toml:"status_code_filter"`
	// Duration compares the stream's total duration in milliseconds
	// (%DURATION%).
	Duration *Comparison `toml:"duration_filter"`
	// NotHealthCheck, an empty table, keeps the requests the health_check
	// filter did not recognise as health checks.
	NotHealthCheck *struct{} `toml:"not_health_check_filter"`
	// ResponseFlag keeps records carrying one of its flags (any flag when
	// the list is empty).
	ResponseFlag *ResponseFlagFilter `toml:"response_flag_filter"`
	// GRPCStatus keeps records whose gRPC status is in (or, with exclude,
	// not in) its list.
	GRPCStatus *GRPCStatusFilter `toml:"grpc_status_filter"`
	// Header keeps records whose request matches its header matcher (a
	// route's match.headers entry).
	Header *HeaderFilter `toml:"header_filter"`
	// And keeps records every one of its filters keeps.
	And *FilterList `toml:"and_filter"`
	// Or keeps records one of its filters keeps.
	Or *FilterList `toml:"or_filter"`
}

// Comparison is Envoy's ComparisonFilter: Op is "EQ", "GE", "LE" or "NE"
// and Value a plain integer (Envoy's runtime override of the value has no
// counterpart).
type Comparison struct {
	Op    string `toml:"op"`
	Value int64  `toml:"value"`
}

// ResponseFlagFilter is Envoy's ResponseFlagFilter: Flags are response flag
// codes ("UH", "UF", …). Every code Envoy defines is accepted; those sluice
// never sets match nothing.
type ResponseFlagFilter struct {
	Flags []string `toml:"flags"`
}

// GRPCStatusFilter is Envoy's GrpcStatusFilter: Statuses are gRPC status
// names ("OK", "UNAVAILABLE", …).
type GRPCStatusFilter struct {
	Statuses []string `toml:"statuses"`
	Exclude  bool     `toml:"exclude"`
}

// HeaderFilter is Envoy's HeaderFilter.
type HeaderFilter struct {
	Header headermatch.Config `toml:"header"`
}

// FilterList is the operand of and_filter and or_filter: at least two
// filters, as Envoy requires.
type FilterList struct {
	Filters []Filter `toml:"filters"`
}

// The kinds of cond.
const (
	condStatus byte = iota + 1
	condDuration
	condNotHealthCheck
	condFlags
	condGRPC
	condHeader
	condAnd
	condOr
)

// The comparison operators.
const (
	opEQ byte = iota + 1
	opGE
	opLE
	opNE
)

// cond is a compiled Filter: a tagged union evaluated by one switch, so
// that deciding whether to log a record calls no interface and allocates
// nothing. It is immutable once compiled.
type cond struct {
	kind    byte
	op      byte
	value   int64
	flags   httpfilter.ResponseFlags
	grpc    uint32 // bit s set: gRPC status s is listed
	exclude bool
	header  headermatch.Matcher
	subs    []cond
}

// envoyFlags are the response flag codes Envoy defines; sluice sets some
// of them (httpfilter.ResponseFlags), the others match nothing.
var envoyFlags = []string{
	"DC", "DI", "DPE", "FI", "IH", "LH", "LR", "NC", "NR", "RL", "RLSE", "SI", "UAEX", "UC", "UF",
	"UH", "UMSDR", "UO", "UPE", "UR", "URX", "UT", "RFCF", "NFCF", "DT", "OM", "DF", "DO", "DR", "UDO",
}

// flagBit returns the flag whose code is name (0 for a code Envoy defines
// that sluice never sets) and whether the code is known at all.
func flagBit(name string) (httpfilter.ResponseFlags, bool) {
	for i, c := range flagCodes {
		if c != "" && c == name {
			return httpfilter.ResponseFlags(1) << i, true
		}
	}
	for _, c := range envoyFlags {
		if c == name {
			return 0, true
		}
	}
	return 0, false
}

// grpcNames are the gRPC status codes' names, by code, as Envoy's config
// spells them.
var grpcNames = [...]string{
	"OK", "CANCELED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
	"OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

// Matcher is a compiled Filter, for the HTTP connection manager's
// local_reply_config mappers. It is immutable and safe for concurrent use.
type Matcher struct{ c cond }

// CompileFilter checks f and compiles it; an error names a key below key,
// the filter table's own key.
func CompileFilter(f *Filter, key string) (*Matcher, error) {
	c, err := compileFilter(f, key)
	if err != nil {
		return nil, err
	}
	return &Matcher{c: c}, nil
}

// Match reports whether the filter keeps rec.
func (m *Matcher) Match(rec *Record) bool { return m.c.match(rec) }

// compileFilter checks f and compiles it; an error's key is relative to
// the filter table, whose own key is key.
func compileFilter(f *Filter, key string) (cond, error) {
	var c cond
	n := 0
	set := func(k byte) { n++; c.kind = k }
	if f.StatusCode != nil {
		set(condStatus)
	}
	if f.Duration != nil {
		set(condDuration)
	}
	if f.NotHealthCheck != nil {
		set(condNotHealthCheck)
	}
	if f.ResponseFlag != nil {
		set(condFlags)
	}
	if f.GRPCStatus != nil {
		set(condGRPC)
	}
	if f.Header != nil {
		set(condHeader)
	}
	if f.And != nil {
		set(condAnd)
	}
	if f.Or != nil {
		set(condOr)
	}
	if n != 1 {
		return c, registry.Errorf(key, "set exactly one of status_code_filter, duration_filter, not_health_check_filter, response_flag_filter, grpc_status_filter, header_filter, and_filter and or_filter")
	}
	switch c.kind {
	case condStatus:
		return c, c.compare(f.StatusCode, key+".status_code_filter")
	case condDuration:
		return c, c.compare(f.Duration, key+".duration_filter")
	case condFlags:
		for i, name := range f.ResponseFlag.Flags {
			bit, ok := flagBit(name)
			if !ok {
				return c, registry.Errorf(fmt.Sprintf("%s.response_flag_filter.flags[%d]", key, i), "unknown response flag %q", name)
			}
			c.flags |= bit
		}
		c.exclude = len(f.ResponseFlag.Flags) == 0 // any flag
	case condGRPC:
		k := key + ".grpc_status_filter.statuses"
		if len(f.GRPCStatus.Statuses) == 0 {
			return c, registry.Errorf(k, "list at least one gRPC status")
		}
		for i, name := range f.GRPCStatus.Statuses {
			code := -1
			for s, n := range grpcNames {
				if n == name {
					code = s
				}
			}
			if code < 0 {
				return c, registry.Errorf(fmt.Sprintf("%s[%d]", k, i), "unknown gRPC status %q (OK, CANCELED, UNKNOWN, … UNAUTHENTICATED)", name)
			}
			c.grpc |= 1 << code
		}
		c.exclude = f.GRPCStatus.Exclude
	case condHeader:
		m, err := f.Header.Header.Compile()
		if err != nil {
			return c, registry.Within(key+".header_filter.header", err)
		}
		c.header = m
	case condAnd, condOr:
		l, k := f.And, key+".and_filter"
		if c.kind == condOr {
			l, k = f.Or, key+".or_filter"
		}
		if len(l.Filters) < 2 {
			return c, registry.Errorf(k+".filters", "list at least two filters")
		}
		for i := range l.Filters {
			sub, err := compileFilter(&l.Filters[i], fmt.Sprintf("%s.filters[%d]", k, i))
			if err != nil {
				return c, err
			}
			c.subs = append(c.subs, sub)
		}
	}
	return c, nil
}

// compare sets c's operator and value from cmp.
func (c *cond) compare(cmp *Comparison, key string) error {
	switch cmp.Op {
	case "EQ":
		c.op = opEQ
	case "GE":
		c.op = opGE
	case "LE":
		c.op = opLE
	case "NE":
		c.op = opNE
	default:
		return registry.Errorf(key+".op", "must be EQ, GE, LE or NE, not %q", cmp.Op)
	}
	if cmp.Value < 0 {
		return registry.Errorf(key+".value", "must be >= 0")
	}
	c.value = cmp.Value
	return nil
}

// match reports whether the filter keeps rec.
func (c *cond) match(rec *Record) bool {
	info := rec.Info
	if info == nil {
		info = &emptyInfo
	}
	switch c.kind {
	case condStatus:
		return c.cmp(int64(info.ResponseCode))
	case condDuration:
		return c.cmp(int64(rec.Duration / time.Millisecond))
	case condNotHealthCheck:
		return !info.HealthCheck
	case condFlags:
		if c.exclude {
			return info.ResponseFlags != 0
		}
		return info.ResponseFlags&c.flags != 0
	case condGRPC:
		s := grpcStatus(rec)
		found := s >= 0 && s < 32 && c.grpc&(1<<s) != 0
		return found != c.exclude
	case condHeader:
		h := rec.Request
		if h == nil {
			h = &emptyRequest // Envoy matches a missing head as an empty one
		}
		return c.header.Match(h)
	case condAnd:
		for i := range c.subs {
			if !c.subs[i].match(rec) {
				return false
			}
		}
		return true
	case condOr:
		for i := range c.subs {
			if c.subs[i].match(rec) {
				return true
			}
		}
		return false
	}
	return false
}

func (c *cond) cmp(v int64) bool {
	switch c.op {
	case opEQ:
		return v == c.value
	case opGE:
		return v >= c.value
	case opLE:
		return v <= c.value
	case opNE:
		return v != c.value
	}
	return false
}

var emptyRequest httpfilter.RequestHeaders

// grpcStatus returns the stream's gRPC status as Envoy's access log finds
// it: the response trailers' grpc-status, else the response head's, else
// the one its HTTP status maps to, else UNKNOWN. A value that is not a
// number is -1, which no status matches.
func grpcStatus(rec *Record) int {
	info := rec.Info
	if info == nil {
		info = &emptyInfo
	}
	if info.GRPCStatusSet {
		return int(info.GRPCStatus)
	}
	if rec.Response != nil {
		if v := rec.Response.Get("grpc-status"); v != nil {
			return grpcwire.ParseStatus(v)
		}
	}
	if info.ResponseCode == 0 {
		return grpcwire.Unknown
	}
	return grpcwire.FromHTTP(info.ResponseCode)
}
