package accesslog

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/grpcwire"
)

// DefaultFormat is Envoy's default access log format.
const DefaultFormat = `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" ` +
	`%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ` +
	`%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" ` +
	`"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"` + "\n"

// ErrFormat is wrapped by every format compilation error.
var ErrFormat = errors.New("accesslog: bad format")

type opKind uint8

const (
	opLiteral opKind = iota
	opStartTime
	opReq
	opResp
	opResponseCode
	opResponseFlags
	opResponseCodeDetails
	opBytesReceived
	opBytesSent
	opDuration
	opUpstreamHost
	opUpstreamCluster
	opDownstreamRemote
	opDownstreamLocal
	opServerName
	opProtocol
	opRouteName
	opStartTimeFormat
	opConst // literal resolved when compiled: %HOSTNAME%, %ENVIRONMENT(X)%
	opReqNoQuery
	opDownstreamRemoteNoPort
	opDownstreamLocalNoPort
	opDownstreamRemotePort
	opDownstreamLocalPort
	opDownstreamDirectRemote
	opDownstreamDirectRemoteNoPort
	opResponseFlagsLong
	opGRPCStatus
	opConnectionID
	opTLSVersion
	opTLSCipher
	opPeerSubject
	opPeerIssuer
	opPeerURISAN
	opPeerDNSSAN
	opPeerFingerprint
	opPeerSerial
	opLocalReplyBody
	opRequestDuration
	opRequestTxDuration
	opResponseDuration
	opResponseTxDuration
	opAttemptCount
)

// numeric operators are written as JSON numbers when they are a whole value.
func (k opKind) numeric() bool {
	switch k {
	case opResponseCode, opBytesReceived, opBytesSent, opDuration, opDownstreamRemotePort,
		opDownstreamLocalPort, opConnectionID, opRequestDuration, opRequestTxDuration, opResponseDuration,
		opResponseTxDuration, opAttemptCount:
		return true
	}
	return false
}

var simpleOps = map[string]opKind{
	"START_TIME":                opStartTime,
	"RESPONSE_CODE":             opResponseCode,
	"RESPONSE_FLAGS":            opResponseFlags,
	"RESPONSE_CODE_DETAILS":     opResponseCodeDetails,
	"BYTES_RECEIVED":            opBytesReceived,
	"BYTES_SENT":                opBytesSent,
	"DURATION":                  opDuration,
	"UPSTREAM_HOST":             opUpstreamHost,
	"UPSTREAM_CLUSTER":          opUpstreamCluster,
	"DOWNSTREAM_REMOTE_ADDRESS": opDownstreamRemote,
	"DOWNSTREAM_LOCAL_ADDRESS":  opDownstreamLocal,
	"REQUESTED_SERVER_NAME":     opServerName,
	"PROTOCOL":                  opProtocol,
	"ROUTE_NAME":                opRouteName,

	"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT":        opDownstreamRemoteNoPort,
	"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT":         opDownstreamLocalNoPort,
	"DOWNSTREAM_REMOTE_PORT":                        opDownstreamRemotePort,
	"DOWNSTREAM_LOCAL_PORT":                         opDownstreamLocalPort,
	"DOWNSTREAM_DIRECT_REMOTE_ADDRESS":              opDownstreamDirectRemote,
	"DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT": opDownstreamDirectRemoteNoPort,
	"RESPONSE_FLAGS_LONG":                           opResponseFlagsLong,
	"GRPC_STATUS":                                   opGRPCStatus,
	"CONNECTION_ID":                                 opConnectionID,
	"DOWNSTREAM_TLS_VERSION":                        opTLSVersion,
	"DOWNSTREAM_TLS_CIPHER":                         opTLSCipher,
	"DOWNSTREAM_PEER_SUBJECT":                       opPeerSubject,
	"DOWNSTREAM_PEER_ISSUER":                        opPeerIssuer,
	"DOWNSTREAM_PEER_URI_SAN":                       opPeerURISAN,
	"DOWNSTREAM_PEER_DNS_SAN":                       opPeerDNSSAN,
	"DOWNSTREAM_PEER_FINGERPRINT_256":               opPeerFingerprint,
	"DOWNSTREAM_PEER_SERIAL":                        opPeerSerial,
	"LOCAL_REPLY_BODY":                              opLocalReplyBody,
	"REQUEST_DURATION":                              opRequestDuration,
	"REQUEST_TX_DURATION":                           opRequestTxDuration,
	"RESPONSE_DURATION":                             opResponseDuration,
	"RESPONSE_TX_DURATION":                          opResponseTxDuration,
	"UPSTREAM_REQUEST_ATTEMPT_COUNT":                opAttemptCount,
}

// op is one compiled piece of a format.
type op struct {
	kind    opKind
	literal string // opLiteral
	header  string // opReq/opResp: lowercase name, ":method" etc. for pseudo
	alt     string // opReq/opResp: the name after '?', or ""
	max     int    // truncate the value to max bytes; 0 means no limit
	tf      timeFormat
	form    byte // opGRPCStatus: grpcCamel, grpcSnake or grpcNumber
}

// The forms of %GRPC_STATUS(…)%.
const (
	grpcCamel byte = iota
	grpcSnake
	grpcNumber
)

// Formatter is a compiled format. It is immutable and safe for concurrent
// use.
type Formatter struct {
	ops  []op
	json []jsonField // set for JSON formats; ops unused
}

type jsonField struct {
	key string // already quoted and escaped, with the ':' ("\"k\":")
	ops []op
}

// Compile parses a format string with Envoy's operators: %START_TIME%,
// %REQ(h)%, %REQ(h?alt)%, %RESP(h)%, %RESP(h?alt)% (any of them with a
// maximum length, %REQ(h):N%), %RESPONSE_CODE%, %RESPONSE_FLAGS%,
// %RESPONSE_CODE_DETAILS%, %BYTES_RECEIVED%, %BYTES_SENT%, %DURATION%,
// %UPSTREAM_HOST%, %UPSTREAM_CLUSTER%, %DOWNSTREAM_REMOTE_ADDRESS%,
// %DOWNSTREAM_LOCAL_ADDRESS%, %REQUESTED_SERVER_NAME%, %PROTOCOL%,
// %ROUTE_NAME%, and those of docs/observability.md added since
// (%START_TIME(fmt)%, %GRPC_STATUS%, %CONNECTION_ID%, the TLS and address
// variants, …). Header names are case-insensitive; :METHOD, :PATH,
// :AUTHORITY and :SCHEME name the request's pseudo-headers; "%%" is a
// literal '%'. An empty format means DefaultFormat. Missing values print
// as "-".
func Compile(format string) (*Formatter, error) {
	if format == "" {
		format = DefaultFormat
	}
	ops, err := parse(format)
	if err != nil {
		return nil, err
	}
	return &Formatter{ops: ops}, nil
}

func parse(format string) ([]op, error) {
	var ops []op
	lit := func(s string) {
		if s == "" {
			return
		}
		if n := len(ops); n > 0 && ops[n-1].kind == opLiteral {
			ops[n-1].literal += s
			return
		}
		ops = append(ops, op{kind: opLiteral, literal: s})
	}
	for rest := format; rest != ""; {
		i := strings.IndexByte(rest, '%')
		if i < 0 {
			lit(rest)
			break
		}
		lit(rest[:i])
		rest = rest[i+1:]
		if strings.HasPrefix(rest, "%") {
			lit("%") // "%%" is a literal '%'
			rest = rest[1:]
			continue
		}
		j := opEnd(rest)
		if j < 0 {
			return nil, fmt.Errorf("%w: unterminated operator %%%s", ErrFormat, rest)
		}
		o, err := parseOp(rest[:j])
		if err != nil {
			return nil, err
		}
		// A maximum length follows the closing '%' only for REQ/RESP in
		// Envoy's grammar: %REQ(h):N%. Here the ":N" sits inside.
		ops = append(ops, o)
		rest = rest[j+1:]
	}
	return ops, nil
}

// opEnd returns the index in rest, which follows an operator's opening
// '%', of its closing '%', or -1. As in Envoy's grammar an operator's
// argument, in parentheses, may hold '%' (a START_TIME format) but not ')'.
func opEnd(rest string) int {
	k := 0
	for k < len(rest) && (rest[k] >= 'A' && rest[k] <= 'Z' || rest[k] >= '0' && rest[k] <= '9' || rest[k] == '_') {
		k++
	}
	if k < len(rest) && rest[k] == '(' {
		c := strings.IndexByte(rest[k:], ')')
		if c < 0 {
			return -1
		}
		k += c + 1
	}
	j := strings.IndexByte(rest[k:], '%')
	if j < 0 {
		return -1
	}
	return k + j
}

func parseOp(s string) (op, error) {
	if k, ok := simpleOps[s]; ok {
		return op{kind: k}, nil
	}
	var o op
	switch {
	case s == "HOSTNAME":
		h, err := os.Hostname()
		if err != nil {
			h = ""
		}
		return op{kind: opConst, literal: h}, nil
	case strings.HasPrefix(s, "REQ("):
		o.kind, s = opReq, s[len("REQ("):]
	case strings.HasPrefix(s, "RESP("):
		o.kind, s = opResp, s[len("RESP("):]
	case strings.HasPrefix(s, "REQ_WITHOUT_QUERY("):
		o.kind, s = opReqNoQuery, s[len("REQ_WITHOUT_QUERY("):]
	case strings.HasPrefix(s, "START_TIME(") && strings.HasSuffix(s, ")"):
		tf, err := compileTime(s[len("START_TIME(") : len(s)-1])
		return op{kind: opStartTimeFormat, tf: tf}, err
	case strings.HasPrefix(s, "ENVIRONMENT("):
		return parseEnv(s[len("ENVIRONMENT("):])
	case strings.HasPrefix(s, "GRPC_STATUS("):
		o.kind = opGRPCStatus
		switch s[len("GRPC_STATUS("):] {
		case "CAMEL_STRING)":
		case "SNAKE_STRING)":
			o.form = grpcSnake
		case "NUMBER)":
			o.form = grpcNumber
		default:
			return o, fmt.Errorf("%w: %%%s%%: the form is CAMEL_STRING, SNAKE_STRING or NUMBER", ErrFormat, s)
		}
		return o, nil
	default:
		return o, fmt.Errorf("%w: unknown operator %%%s%%", ErrFormat, s)
	}
	end := strings.IndexByte(s, ')')
	if end < 0 {
		return o, fmt.Errorf("%w: missing ')' in %%%s%%", ErrFormat, s)
	}
	names, tail := s[:end], s[end+1:]
	name, alt, _ := strings.Cut(names, "?")
	if name == "" {
		return o, fmt.Errorf("%w: empty header name", ErrFormat)
	}
	o.header, o.alt = strings.ToLower(name), strings.ToLower(alt)
	if err := o.parseMax(tail); err != nil {
		return o, err
	}
	return o, nil
}

// parseEnv parses the rest of %ENVIRONMENT(name):N%, after the '(': the
// variable's value when the format is compiled, missing when unset.
func parseEnv(s string) (op, error) {
	end := strings.IndexByte(s, ')')
	if end <= 0 {
		return op{}, fmt.Errorf("%w: %%ENVIRONMENT(%s%%: want ENVIRONMENT(NAME)", ErrFormat, s)
	}
	o := op{kind: opConst, literal: os.Getenv(s[:end])}
	return o, o.parseMax(s[end+1:])
}

// parseMax parses an operator's ":N" maximum length, if any.
func (o *op) parseMax(tail string) error {
	if tail != "" {
		if tail[0] != ':' {
			return fmt.Errorf("%w: unexpected %q after the operator's argument", ErrFormat, tail)
		}
		n, err := strconv.Atoi(tail[1:])
		if err != nil || n <= 0 {
			return fmt.Errorf("%w: bad maximum length %q", ErrFormat, tail[1:])
		}
		o.max = n
	}
	return nil
}

// Format appends the formatted line for rec to dst and returns it. It does
// not allocate once dst has room for the line.
func (f *Formatter) Format(dst []byte, rec *Record) []byte {
	if f.json != nil {
		return f.formatJSON(dst, rec)
	}
	for i := range f.ops {
		dst = f.ops[i].append(dst, rec)
	}
	return dst
}

// CompileValue parses a header value with the operators of Compile (Envoy
// formats the values of request_headers_to_add the same way). Unlike a log
// line, a value formatted by AppendValue prints nothing for a missing
// operand.
func CompileValue(value string) (*Formatter, error) {
	ops, err := parse(value)
	if err != nil {
		return nil, err
	}
	return &Formatter{ops: ops}, nil
}

// Literal reports whether the format has no operators, and its text.
func (f *Formatter) Literal() (string, bool) {
	switch {
	case f.json != nil:
		return "", false
	case len(f.ops) == 0:
		return "", true
	case len(f.ops) == 1 && f.ops[0].kind == opLiteral:
		return f.ops[0].literal, true
	}
	return "", false
}

// AppendValue appends the formatted value for rec to dst: Format without
// the "-" for missing operands. It is for formats built by CompileValue.
func (f *Formatter) AppendValue(dst []byte, rec *Record) []byte {
	for i := range f.ops {
		dst = f.ops[i].appendOr(dst, rec, "")
	}
	return dst
}

// append writes the op's value (or "-" when missing), truncated to max.
func (o *op) append(dst []byte, rec *Record) []byte { return o.appendOr(dst, rec, "-") }

// appendOr writes the op's value, or missing when it has none, truncated
// to max.
func (o *op) appendOr(dst []byte, rec *Record, missing string) []byte {
	if o.kind == opLiteral {
		return append(dst, o.literal...)
	}
	start := len(dst)
	dst = o.value(dst, rec)
	if len(dst) == start && o.kind != opLocalReplyBody { // an empty body is not missing
		return append(dst, missing...)
	}
	if o.max > 0 && len(dst)-start > o.max {
		dst = dst[:start+o.max]
	}
	return dst
}

// value appends the op's value; nothing means missing.
func (o *op) value(dst []byte, rec *Record) []byte {
	info := rec.Info
	if info == nil {
		info = &emptyInfo
	}
	switch o.kind {
	case opStartTime:
		if info.Start.IsZero() {
			return dst
		}
		return info.Start.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
	case opReq:
		if rec.Request == nil {
			return dst
		}
		v := requestHeader(rec.Request, o.header)
		if v == nil && o.alt != "" {
			v = requestHeader(rec.Request, o.alt)
		}
		return append(dst, v...)
	case opResp:
		if rec.Response == nil {
			return dst
		}
		v := rec.Response.Get(o.header)
		if v == nil && o.alt != "" {
			v = rec.Response.Get(o.alt)
		}
		return append(dst, v...)
	case opResponseCode:
		return strconv.AppendInt(dst, int64(info.ResponseCode), 10)
	case opResponseFlags:
		return appendFlags(dst, info.ResponseFlags)
	case opResponseCodeDetails:
		return append(dst, info.ResponseDetails...)
	case opBytesReceived:
		return strconv.AppendInt(dst, info.BytesReceived, 10)
	case opBytesSent:
		return strconv.AppendInt(dst, info.BytesSent, 10)
	case opDuration:
		return strconv.AppendInt(dst, int64(rec.Duration/time.Millisecond), 10)
	case opUpstreamHost:
		return append(dst, info.UpstreamHost...)
	case opLocalReplyBody:
		return append(dst, rec.LocalReplyBody...)
	case opUpstreamCluster:
		return append(dst, info.UpstreamCluster...)
	case opDownstreamRemote:
		if !info.DownstreamRemote.IsValid() {
			return dst
		}
		return info.DownstreamRemote.AppendTo(dst)
	case opDownstreamLocal:
		if !info.DownstreamLocal.IsValid() {
			return dst
		}
		return info.DownstreamLocal.AppendTo(dst)
	case opServerName:
		return append(dst, info.ServerName...)
	case opProtocol:
		return append(dst, info.Protocol...)
	case opRouteName:
		return append(dst, info.RouteName...)
	case opStartTimeFormat:
		if info.Start.IsZero() {
			return dst
		}
		return o.tf.append(dst, info.Start)
	case opConst:
		return append(dst, o.literal...)
	case opReqNoQuery:
		if rec.Request == nil {
			return dst
		}
		v := requestHeader(rec.Request, o.header)
		if v == nil && o.alt != "" {
			v = requestHeader(rec.Request, o.alt)
		}
		if i := bytes.IndexByte(v, '?'); i >= 0 {
			v = v[:i]
		}
		return append(dst, v...)
	case opDownstreamRemoteNoPort:
		return appendAddr(dst, info.DownstreamRemote)
	case opDownstreamLocalNoPort:
		return appendAddr(dst, info.DownstreamLocal)
	case opDownstreamRemotePort:
		return appendPort(dst, info.DownstreamRemote)
	case opDownstreamLocalPort:
		return appendPort(dst, info.DownstreamLocal)
	case opDownstreamDirectRemote, opDownstreamDirectRemoteNoPort:
		a := info.DownstreamDirectRemote
		if !a.IsValid() {
			a = info.DownstreamRemote
		}
		if o.kind == opDownstreamDirectRemoteNoPort {
			return appendAddr(dst, a)
		}
		if !a.IsValid() {
			return dst
		}
		return a.AppendTo(dst)
	case opResponseFlagsLong:
		return appendFlagsLong(dst, info.ResponseFlags)
	case opGRPCStatus:
		return o.appendGRPCStatus(dst, rec)
	case opConnectionID:
		if rec.Info == nil {
			return dst
		}
		return strconv.AppendUint(dst, info.ConnectionID, 10)
	case opRequestDuration:
		return appendSince(dst, info.Start, info.DownstreamRequestEnd)
	case opRequestTxDuration:
		return appendSince(dst, info.Start, info.UpstreamRequestSent)
	case opResponseDuration:
		return appendSince(dst, info.Start, info.UpstreamResponseStart)
	case opResponseTxDuration:
		if info.UpstreamResponseStart.IsZero() {
			return dst
		}
		return appendSince(dst, info.UpstreamResponseStart, info.Start.Add(rec.Duration))
	case opAttemptCount:
		if rec.Info == nil {
			return dst
		}
		return strconv.AppendInt(dst, int64(info.UpstreamAttempts), 10)
	default:
		return appendTLS(dst, o.kind, info.TLS)
	}
}

// appendSince appends the milliseconds from start to t, nothing when
// either is unknown.
func appendSince(dst []byte, start, t time.Time) []byte {
	if start.IsZero() || t.IsZero() {
		return dst
	}
	d := t.Sub(start)
	if d < 0 {
		d = 0
	}
	return strconv.AppendInt(dst, int64(d/time.Millisecond), 10)
}

// appendAddr appends a's address without its port.
func appendAddr(dst []byte, a netip.AddrPort) []byte {
	if !a.IsValid() {
		return dst
	}
	return a.Addr().AppendTo(dst)
}

// appendPort appends a's port.
func appendPort(dst []byte, a netip.AddrPort) []byte {
	if !a.IsValid() {
		return dst
	}
	return strconv.AppendUint(dst, uint64(a.Port()), 10)
}

// appendGRPCStatus appends the gRPC status of a gRPC request's stream, as
// Envoy's %GRPC_STATUS%: nothing for a request that is not gRPC.
func (o *op) appendGRPCStatus(dst []byte, rec *Record) []byte {
	if rec.Request == nil || !grpcwire.IsGRPC(rec.Request.Get("content-type")) {
		return dst
	}
	s := grpcStatus(rec)
	switch {
	case o.form == grpcNumber || s < 0:
		return strconv.AppendInt(dst, int64(s), 10)
	case s >= len(grpcNames):
		return append(dst, "InvalidCode"...)
	case o.form == grpcSnake:
		return append(dst, grpcSnakeNames[s]...)
	}
	return append(dst, grpcCamelNames[s]...)
}

// grpcCamelNames and grpcSnakeNames are Envoy's %GRPC_STATUS% names.
var (
	grpcCamelNames = [...]string{
		"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
		"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted",
		"OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated",
	}
	grpcSnakeNames = [...]string{
		"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
		"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
		"OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
	}
)

var emptyInfo httpfilter.StreamInfo

func requestHeader(r *httpfilter.RequestHeaders, name string) []byte {
	switch name {
	case ":method":
		return r.Method
	case ":path":
		return r.Path
	case ":authority", "host":
		return r.Authority
	case ":scheme":
		return r.Scheme
	}
	return r.Get(name)
}

// flagCodes holds each response flag's code, so that printing flags does
// not allocate.
var flagCodes = func() (codes [32]string) {
	for i := range codes {
		if s := httpfilter.ResponseFlags(1 << i).String(); s != "-" {
			codes[i] = s
		}
	}
	return codes
}()

// appendFlags appends the flags' codes joined by ',', or "-" for none:
// Envoy's value, a string in a JSON line too, not a missing value.
func appendFlags(dst []byte, f httpfilter.ResponseFlags) []byte {
	if f == 0 {
		return append(dst, '-')
	}
	start := len(dst)
	for i, c := range flagCodes {
		if f&(1<<i) != 0 && c != "" {
			if len(dst) > start {
				dst = append(dst, ',')
			}
			dst = append(dst, c...)
		}
	}
	return dst
}

// flagLong holds Envoy's long names of the response flags, by code, for
// %RESPONSE_FLAGS_LONG%; a code without one prints as itself.
var flagLong = map[string]string{
	"NR": "NoRouteFound", "UH": "NoHealthyUpstream", "UF": "UpstreamConnectionFailure",
	"UC": "UpstreamConnectionTermination", "UT": "UpstreamRequestTimeout",
	"UPE": "UpstreamProtocolError", "DPE": "DownstreamProtocolError",
	"DC": "DownstreamConnectionTermination", "UO": "UpstreamOverflow",
	"UAEX": "UnauthorizedExternalService", "SI": "StreamIdleTimeout", "LR": "LocalReset",
	"FI": "FaultInjected", "DI": "DelayInjected", "RL": "RateLimited",
	"URX": "UpstreamRetryLimitExceeded", "UMSDR": "UpstreamMaxStreamDurationReached",
	"DT": "DurationTimeout", "NC": "NoClusterFound", "UR": "UpstreamRemoteReset",
	"DR": "DownstreamRemoteReset", "RBAC": "RBACAccessDenied",
}

// flagLongNames holds each response flag's long name, by bit.
var flagLongNames = func() (names [32]string) {
	for i, c := range flagCodes {
		if l, ok := flagLong[c]; ok {
			names[i] = l
		} else {
			names[i] = c
		}
	}
	return names
}()

// appendFlagsLong appends the flags' long names joined by ',', or "-".
func appendFlagsLong(dst []byte, f httpfilter.ResponseFlags) []byte {
	if f == 0 {
		return append(dst, '-')
	}
	start := len(dst)
	for i, c := range flagLongNames {
		if f&(1<<i) != 0 && c != "" {
			if len(dst) > start {
				dst = append(dst, ',')
			}
			dst = append(dst, c...)
		}
	}
	return dst
}
