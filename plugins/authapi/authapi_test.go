package authapi_test

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluice-proxy/sluice/plugins/authapi"
)

// dispense serves impl in-process over a real gRPC connection and returns
// the sluice-side Authorizer.
func dispense(t *testing.T, impl authapi.Authorizer) authapi.Authorizer {
	t.Helper()
	client, _ := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{
		authapi.PluginName: &authapi.GRPCPlugin{Impl: impl},
	})
	// Closing the client asks the server to shut down (go-plugin's
	// controller stops it); stopping it here as well races with that.
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(authapi.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	return raw.(authapi.Authorizer)
}

func TestCheckRoundTripsAttributesAndAnswer(t *testing.T) {
	a := dispense(t, authapi.AuthorizerFunc(func(_ context.Context, r *authapi.CheckRequest) (*authapi.CheckResponse, error) {
		if r.GetHttp().GetHeaders()["authorization"] != "Bearer x" || string(r.GetHttp().GetBody()) != "body" {
			return authapi.Deny(401, "bad"), nil
		}
		return authapi.Allow("x-user", r.GetSource().GetAddress()), nil
	}))
	resp, err := a.Check(context.Background(), &authapi.CheckRequest{
		Source: &authapi.Peer{Address: "192.0.2.1", Port: 4000},
		Http:   &authapi.HTTPRequest{Headers: map[string]string{"authorization": "Bearer x"}, Body: []byte("body")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if h := resp.GetOk().GetHeaders(); len(h) != 1 || h[0].Header.Key != "x-user" || h[0].Header.Value != "192.0.2.1" {
		t.Fatalf("ok headers = %v", h)
	}
}

func TestPanickingPluginAnswersInternalError(t *testing.T) {
	a := dispense(t, authapi.AuthorizerFunc(func(context.Context, *authapi.CheckRequest) (*authapi.CheckResponse, error) {
		panic("boom")
	}))
	_, err := a.Check(context.Background(), &authapi.CheckRequest{})
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v, want Internal with the panic", err)
	}
	// The plugin survived: it answers again.
	if _, err := a.Check(context.Background(), &authapi.CheckRequest{}); status.Code(err) != codes.Internal {
		t.Fatalf("second check: err = %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		resp *authapi.CheckResponse
		ok   bool
	}{
		{"allow", authapi.Allow("x-user", "a"), true},
		{"deny default status", authapi.Deny(0, "no"), true},
		{"deny 401", authapi.Deny(401, "no", "www-authenticate", "Bearer"), true},
		{"nil", nil, false},
		{"empty", &authapi.CheckResponse{}, false},
		{"status 1000", authapi.Deny(1000, ""), false},
		{"status 99", authapi.Deny(99, ""), false},
		{"crlf value", authapi.Allow("x", "a\r\nb: c"), false},
		{"nul value", authapi.Allow("x", "a\x00"), false},
		{"space in name", authapi.Allow("bad name", "v"), false},
		{"pseudo header", authapi.Allow(":path", "/"), false},
		{"remove host", authapi.AllowWith(&authapi.OkResponse{HeadersToRemove: []string{"host"}}), false},
		{"bad reply header", authapi.Deny(403, "", "x", "\n"), false},
		{"set content-length", authapi.Allow("Content-Length", "1"), false},
		{"set transfer-encoding", authapi.Allow("transfer-encoding", "chunked"), false},
		{"response connection", authapi.AllowWith(&authapi.OkResponse{
			ResponseHeadersToAdd: []*authapi.HeaderValueOption{authapi.Header("connection", "close")}}), false},
		{"deny with content-type", authapi.Deny(401, "{}", "content-type", "application/json"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := authapi.Validate(tc.resp); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
