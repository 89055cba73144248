package hcm

import (
	"fmt"
	"strings"

	"github.com/sluice-proxy/sluice/gateway/accesslog"
	"github.com/sluice-proxy/sluice/gateway/codec/http1"
	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/internal/clock"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// LocalReplyConfig is Envoy's LocalReplyConfig: how the manager rewrites
// the replies it sends itself (no route, router failures, filters' replies,
// timeouts, codec errors). The first mapper whose filter matches rewrites
// the reply; the body is then formatted with the mapper's
// body_format_override, else body_format.
type LocalReplyConfig struct {
	// Mappers are tried in order; the first whose filter matches applies.
	Mappers []ResponseMapper `toml:"mappers"`
	// BodyFormat formats every reply's body that no matching mapper
	// formats (default: the body text as text/plain).
	BodyFormat *BodyFormat `toml:"body_format"`
}

// ResponseMapper is Envoy's ResponseMapper: a filter and what to rewrite
// in a local reply it matches.
type ResponseMapper struct {
	// Filter is an access log filter (accesslog.Filter) evaluated on the
	// stream with the reply's status as its response code. Required.
	Filter *accesslog.Filter `toml:"filter"`
	// StatusCode replaces the reply's status (200..599; 0: kept).
	StatusCode int `toml:"status_code"`
	// Body replaces the reply's text (%LOCAL_REPLY_BODY%).
	Body *string `toml:"body"`
	// BodyFormatOverride formats the body instead of body_format.
	BodyFormatOverride *BodyFormat `toml:"body_format_override"`
	// HeadersToAdd are added to the reply, with the route's
	// response_headers_to_add semantics; %RESPONSE_CODE% in a value is
	// the status before status_code applies.
	HeadersToAdd []config.HeaderValueOption `toml:"headers_to_add"`
}

// BodyFormat is Envoy's SubstitutionFormatString: a text or JSON format
// with the access log's operators plus %LOCAL_REPLY_BODY%.
type BodyFormat struct {
	// TextFormat is a format string.
	TextFormat string `toml:"text_format"`
	// JSONFormat maps JSON keys to format strings; it excludes
	// text_format.
	JSONFormat map[string]string `toml:"json_format"`
	// ContentType is the reply's content-type (default text/plain for
	// text_format, application/json for json_format).
	ContentType string `toml:"content_type"`
}

// localReply is a compiled LocalReplyConfig. It is immutable.
type localReply struct {
	mappers []responseMapper
	format  *bodyFormat // nil: the text as text/plain
}

type responseMapper struct {
	match   *accesslog.Matcher
	status  int
	body    *string
	format  *bodyFormat
	headers []headerAdd
}

type bodyFormat struct {
	f           *accesslog.Formatter
	contentType []byte
}

// headerAdd is one compiled header of headers_to_add.
type headerAdd struct {
	name      []byte
	value     *accesslog.Formatter
	action    string
	keepEmpty bool
}

// compileLocalReply checks and compiles c; nil when c is nil.
func compileLocalReply(c *LocalReplyConfig) (*localReply, error) {
	if c == nil {
		return nil, nil
	}
	const key = "local_reply_config"
	lr := &localReply{}
	var err error
	if c.BodyFormat != nil {
		if lr.format, err = compileBodyFormat(c.BodyFormat, key+".body_format"); err != nil {
			return nil, err
		}
	}
	for i := range c.Mappers {
		m := &c.Mappers[i]
		k := fmt.Sprintf("%s.mappers[%d]", key, i)
		if m.Filter == nil {
			return nil, registry.Errorf(k+".filter", "required")
		}
		var rm responseMapper
		if rm.match, err = accesslog.CompileFilter(m.Filter, k+".filter"); err != nil {
			return nil, err
		}
		if m.StatusCode != 0 && (m.StatusCode < 200 || m.StatusCode > 599) {
			return nil, registry.Errorf(k+".status_code", "must be in 200..599")
		}
		rm.status, rm.body = m.StatusCode, m.Body
		if m.BodyFormatOverride != nil {
			if rm.format, err = compileBodyFormat(m.BodyFormatOverride, k+".body_format_override"); err != nil {
				return nil, err
			}
		}
		for j, h := range m.HeadersToAdd {
			hk := fmt.Sprintf("%s.headers_to_add[%d]", k, j)
			name := strings.ToLower(h.Key)
			if !http1.ValidFieldName(name) {
				return nil, registry.Errorf(hk+".key", "not a valid header name: %q", h.Key)
			}
			if !http1.ValidFieldValue(h.Value) {
				return nil, registry.Errorf(hk+".value", "not a valid field value (control characters, or leading or trailing whitespace)")
			}
			f, err := accesslog.CompileValue(h.Value)
			if err != nil {
				return nil, registry.Errorf(hk+".value", "%v", err)
			}
			switch h.AppendAction {
			case "", "append_if_exists_or_add", "add_if_absent", "overwrite_if_exists_or_add", "overwrite_if_exists":
			default:
				return nil, registry.Errorf(hk+".append_action", "must be one of %s, got %q", strings.Join(config.AppendActions, ", "), h.AppendAction)
			}
			rm.headers = append(rm.headers, headerAdd{name: []byte(name), value: f, action: h.AppendAction, keepEmpty: h.KeepEmptyValue})
		}
		lr.mappers = append(lr.mappers, rm)
	}
	return lr, nil
}

func compileBodyFormat(b *BodyFormat, key string) (*bodyFormat, error) {
	bf := &bodyFormat{contentType: textPlain}
	var err error
	switch {
	case b.TextFormat != "" && len(b.JSONFormat) > 0:
		return nil, registry.Errorf(key, "set exactly one of text_format and json_format")
	case len(b.JSONFormat) > 0:
		if bf.f, err = accesslog.CompileJSON(b.JSONFormat); err != nil {
			return nil, registry.Errorf(key+".json_format", "%v", err)
		}
		bf.contentType = []byte("application/json")
	case b.TextFormat != "":
		if bf.f, err = accesslog.CompileValue(b.TextFormat); err != nil {
			return nil, registry.Errorf(key+".text_format", "%v", err)
		}
	default:
		return nil, registry.Errorf(key, "set exactly one of text_format and json_format")
	}
	if b.ContentType != "" {
		if !http1.ValidFieldValue(b.ContentType) {
			return nil, registry.Errorf(key+".content_type", "not a valid field value")
		}
		bf.contentType = []byte(b.ContentType)
	}
	return bf, nil
}

// rewrite applies the local reply config to the reply r the stream is
// about to send with text body, as Envoy's LocalReplyImpl::rewrite and
// Utility::prepareLocalReply do: the first matching mapper sets the body
// text, adds its headers, sets the status; the body is formatted; then,
// for a non-gRPC reply, a non-empty body gets the format's content-type
// when the reply has none, or when the body changed and no mapper header
// changed the content-type; an empty body loses any content-type. r's
// headers are replaced by a fresh slice (the caller's stay untouched).
func (lr *localReply) rewrite(s *stream, r *httpfilter.LocalReply, body string, grpc bool) string {
	s.info.ResponseCode = r.Status
	h := httpfilter.ResponseHeaders{Status: r.Status}
	h.Fields = append(make([]httpfilter.Field, 0, len(r.Headers)+2), r.Headers...)
	origType := string(h.Get("content-type"))
	rec := accesslog.Record{Info: &s.info, Request: s.h, Response: &h, LocalReplyBody: body}
	if !s.info.Start.IsZero() {
		rec.Duration = clock.Now().Sub(s.info.Start)
	}
	format, orig := lr.format, body
	for i := range lr.mappers {
		m := &lr.mappers[i]
		if !m.match.Match(&rec) {
			continue
		}
		if m.body != nil {
			body = *m.body
			rec.LocalReplyBody = body
		}
		for j := range m.headers {
			m.headers[j].apply(&h.Headers, &rec)
		}
		if m.status != 0 && m.status != r.Status {
			r.Status, h.Status = m.status, m.status
			s.info.ResponseCode = m.status
		}
		if m.format != nil {
			format = m.format
		}
		break
	}
	ctype := textPlain
	if format != nil {
		body = string(format.f.Format(nil, &rec))
		ctype = format.contentType
	}
	if !grpc {
		cur := h.Get("content-type")
		switch {
		case body == "":
			h.Del("content-type")
		case cur == nil || (body != orig && string(cur) == origType):
			h.Del("content-type")
			h.AddBytes(hdrContentType, ctype)
		}
	}
	r.Headers = h.Fields
	return body
}

// apply adds a to h as a route's response_headers_to_add does.
func (a *headerAdd) apply(h *httpfilter.Headers, rec *accesslog.Record) {
	v := a.value.AppendValue(nil, rec)
	if len(v) == 0 && !a.keepEmpty {
		return
	}
	name := string(a.name)
	switch a.action {
	case "add_if_absent":
		if h.Has(name) {
			return
		}
	case "overwrite_if_exists":
		if !h.Has(name) {
			return
		}
		h.Del(name)
	case "overwrite_if_exists_or_add":
		h.Del(name)
	}
	h.AddBytes(a.name, v)
}
