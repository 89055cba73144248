package router

import (
	"fmt"
	"strings"

	"github.com/sluice-proxy/sluice/gateway/accesslog"
	"github.com/sluice-proxy/sluice/gateway/config"
	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

// appendAction is what adding a header does when the header is present
// (Envoy's HeaderValueOption.append_action).
type appendAction uint8

const (
	appendIfExistsOrAdd appendAction = iota
	addIfAbsent
	overwriteIfExistsOrAdd
	overwriteIfExists
)

// headerAdd is one compiled header to add.
type headerAdd struct {
	name      string
	nameB     []byte               // name, for Headers.AddBytes
	literal   []byte               // the value, when it has no operators
	format    *accesslog.Formatter // the value, when it has operators
	action    appendAction
	keepEmpty bool
}

// headerOps is one level's compiled mutations of one direction. It is
// immutable.
type headerOps struct {
	remove []string
	add    []headerAdd
}

// headerMutations is the compiled mutations of a route, virtual host or
// route table, both directions. It is immutable.
type headerMutations struct {
	request, response headerOps
}

// newHeaderMutations compiles m, or returns nil when m changes nothing.
func newHeaderMutations(m *config.HeaderMutations) (*headerMutations, error) {
	req, err := newHeaderOps(m.RequestHeadersToRemove, m.RequestHeadersToAdd)
	if err != nil {
		return nil, fmt.Errorf("request_headers_to_add: %w", err)
	}
	resp, err := newHeaderOps(m.ResponseHeadersToRemove, m.ResponseHeadersToAdd)
	if err != nil {
		return nil, fmt.Errorf("response_headers_to_add: %w", err)
	}
	if req.empty() && resp.empty() {
		return nil, nil
	}
	return &headerMutations{request: req, response: resp}, nil
}

func newHeaderOps(remove []string, add []config.HeaderValueOption) (headerOps, error) {
	ops := headerOps{}
	for _, n := range remove {
		ops.remove = append(ops.remove, strings.ToLower(n))
	}
	for _, o := range add {
		f, err := accesslog.CompileValue(o.Value)
		if err != nil {
			return ops, fmt.Errorf("%s: %w", o.Key, err)
		}
		a := headerAdd{name: strings.ToLower(o.Key), keepEmpty: o.KeepEmptyValue}
		a.nameB = []byte(a.name)
		if lit, ok := f.Literal(); ok {
			a.literal = []byte(lit)
		} else {
			a.format = f
		}
		switch o.AppendAction {
		case "add_if_absent":
			a.action = addIfAbsent
		case "overwrite_if_exists_or_add":
			a.action = overwriteIfExistsOrAdd
		case "overwrite_if_exists":
			a.action = overwriteIfExists
		}
		ops.add = append(ops.add, a)
	}
	return ops, nil
}

func (o *headerOps) empty() bool { return len(o.remove) == 0 && len(o.add) == 0 }

// apply removes, then adds, o's headers in h. rec gives the operators in
// the values their operands.
func (o *headerOps) apply(h *httpfilter.Headers, rec *accesslog.Record) {
	for _, n := range o.remove {
		h.Del(n)
	}
	for i := range o.add {
		a := &o.add[i]
		// A literal is the route's own immutable bytes, added without a
		// copy (Headers.AddBytes); a formatted value is fresh.
		v := a.literal
		if a.format != nil {
			v = a.format.AppendValue(nil, rec)
		}
		if len(v) == 0 && !a.keepEmpty {
			continue
		}
		switch a.action {
		case appendIfExistsOrAdd:
		case addIfAbsent:
			if h.Has(a.name) {
				continue
			}
		case overwriteIfExists:
			if !h.Has(a.name) {
				continue
			}
			fallthrough
		case overwriteIfExistsOrAdd:
			h.Del(a.name)
		}
		h.AddBytes(a.nameB, v)
	}
}

// mutateRequest applies the route's request header mutations to h: the
// route's own, then its virtual host's, then its route table's.
func (f *filter) mutateRequest(h *httpfilter.RequestHeaders) {
	rec := accesslog.Record{Info: f.cb.Info(), Request: h}
	for _, m := range f.mutations {
		m.request.apply(&h.Headers, &rec)
	}
}

// mutateResponse applies the route's response header mutations to h, in
// the order of mutateRequest.
func (f *filter) mutateResponse(h *httpfilter.ResponseHeaders) {
	if f.route == nil {
		return
	}
	rec := accesslog.Record{Info: f.cb.Info(), Request: f.req, Response: h}
	for _, m := range f.mutations {
		m.response.apply(&h.Headers, &rec)
	}
}

// reply sends a local reply with the route's response header mutations
// applied to its headers, as Envoy does for a route's direct responses,
// redirects and the router's own error replies.
func (f *filter) reply(r httpfilter.LocalReply) {
	if f.route != nil && len(f.mutations) > 0 {
		h := httpfilter.ResponseHeaders{Status: r.Status}
		h.Fields = r.Headers
		f.mutateResponse(&h)
		r.Headers = h.Fields
	}
	f.cb.SendLocalReply(r)
}
