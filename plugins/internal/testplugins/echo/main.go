// Command echo is a scripted test plugin. For HTTP checks: a request with an
// x-deny header is denied with that status, body "denied by plugin\n" and
// reply header x-deny-reason: test, plus a reply header <name> for each
// request header x-deny-header-<name> (its value); otherwise it is allowed, the upstream
// request gets x-auth-user: tester, x-seen (method, path, host, source
// address), x-body (the body the plugin received, when at most 4 KiB),
// x-body-len (its length), x-partial, x-plugin-env (the plugin's
// $SLUICE_TEST_PLUGIN_ENV), x-principal (the source principal) and x-sni, loses x-remove-me, and the
// response gets x-auth-checked: yes; a request header
// x-allow-header-<name> (x-allow-response-header-<name>) makes the plugin
// also set <name> to its value on the upstream request (the response); each
// context extension <k> of the check sets x-ctx-<k> to its value on the
// upstream request. For connection checks: denied when the context
// extension "deny" is "yes".
package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/sluice-proxy/sluice/plugins/authapi"
)

func check(_ context.Context, r *authapi.CheckRequest) (*authapi.CheckResponse, error) {
	h := r.GetHttp()
	if h == nil {
		if r.GetContextExtensions()["deny"] == "yes" {
			return authapi.Deny(403, "connection denied"), nil
		}
		return authapi.Allow(), nil
	}
	if v, ok := h.GetHeaders()["x-deny"]; ok {
		status, _ := strconv.Atoi(v)
		hdrs := []string{"x-deny-reason", "test"}
		for _, k := range prefixed(h.GetHeaders(), "x-deny-header-") {
			hdrs = append(hdrs, strings.TrimPrefix(k, "x-deny-header-"), h.GetHeaders()[k])
		}
		return authapi.Deny(status, "denied by plugin\n", hdrs...), nil
	}
	body := ""
	if len(h.Body) <= 4096 {
		body = string(h.Body)
	}
	ok := &authapi.OkResponse{
		Headers: []*authapi.HeaderValueOption{
			authapi.Header("x-auth-user", "tester"),
			authapi.Header("x-seen", fmt.Sprintf("%s %s %s %s", h.Method, h.Path, h.Host, r.GetSource().GetAddress())),
			authapi.Header("x-body", body),
			authapi.Header("x-body-len", strconv.Itoa(len(h.Body))),
			authapi.Header("x-partial", strconv.FormatBool(h.PartialBody)),
			authapi.Header("x-plugin-env", os.Getenv("SLUICE_TEST_PLUGIN_ENV")),
			authapi.Header("x-principal", r.GetSource().GetPrincipal()),
			authapi.Header("x-sni", r.GetSni()),
		},
		HeadersToRemove:      []string{"x-remove-me"},
		ResponseHeadersToAdd: []*authapi.HeaderValueOption{authapi.Header("x-auth-checked", "yes")},
	}
	for _, k := range prefixed(h.GetHeaders(), "x-allow-header-") {
		ok.Headers = append(ok.Headers, authapi.Header(strings.TrimPrefix(k, "x-allow-header-"), h.GetHeaders()[k]))
	}
	ext := r.GetContextExtensions()
	keys := make([]string, 0, len(ext))
	for k := range ext {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ok.Headers = append(ok.Headers, authapi.Header("x-ctx-"+k, ext[k]))
	}
	for _, k := range prefixed(h.GetHeaders(), "x-allow-response-header-") {
		ok.ResponseHeadersToAdd = append(ok.ResponseHeadersToAdd,
			authapi.Header(strings.TrimPrefix(k, "x-allow-response-header-"), h.GetHeaders()[k]))
	}
	return authapi.AllowWith(ok), nil
}

// prefixed returns the names in h that start with prefix, sorted.
func prefixed(h map[string]string, prefix string) []string {
	var names []string
	for k := range h {
		if strings.HasPrefix(k, prefix) {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return names
}

func main() { authapi.Serve(authapi.AuthorizerFunc(check)) }
