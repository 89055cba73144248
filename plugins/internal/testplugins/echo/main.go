// Command echo is a scripted test plugin. For HTTP checks: a request with an
// x-deny header is denied with that status, body "denied by plugin\n" and
// reply header x-deny-reason: test, plus a reply header <name> for each
// request header x-deny-header-<name> (its value); otherwise it is allowed, the upstream
// request gets x-auth-user: tester, x-seen (method, path, host, source
// address), x-body (the body the plugin received, when at most 4 KiB),
// x-body-len (its length), x-partial and x-plugin-env (the plugin's
// $SLUICE_TEST_PLUGIN_ENV), loses x-remove-me, and the
// response gets x-auth-checked: yes. For connection checks: denied when the
// context extension "deny" is "yes".
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
		names := make([]string, 0, len(h.GetHeaders()))
		for k := range h.GetHeaders() {
			if strings.HasPrefix(k, "x-deny-header-") {
				names = append(names, k)
			}
		}
		sort.Strings(names)
		for _, k := range names {
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
		},
		HeadersToRemove:      []string{"x-remove-me"},
		ResponseHeadersToAdd: []*authapi.HeaderValueOption{authapi.Header("x-auth-checked", "yes")},
	}
	return authapi.AllowWith(ok), nil
}

func main() { authapi.Serve(authapi.AuthorizerFunc(check)) }
