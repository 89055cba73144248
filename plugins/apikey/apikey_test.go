package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/plugin"
	"github.com/sluice-proxy/sluice/gateway/plugin/plugintest"
	"github.com/sluice-proxy/sluice/plugins/authapi"
)

// writeKeys replaces the keys file atomically, as operators should.
func writeKeys(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func check(t *testing.T, a authapi.Authorizer, key string) *authapi.CheckResponse {
	t.Helper()
	h := map[string]string{}
	if key != "" {
		h["x-api-key"] = key
	}
	resp, err := a.Check(context.Background(), &authapi.CheckRequest{Http: &authapi.HTTPRequest{Headers: h}})
	if err != nil {
		t.Fatal(err)
	}
	if err := authapi.Validate(resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestKnownKeyIsAllowedWithItsNameAndStripped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	writeKeys(t, path, "# demo keys\nk-alice alice\nk-anon\n")
	a, err := newAuthorizer(path, "X-Api-Key", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	ok := check(t, a, "k-alice").GetOk()
	if ok == nil || len(ok.Headers) != 1 || ok.Headers[0].Header.Value != "alice" || ok.HeadersToRemove[0] != "x-api-key" {
		t.Fatalf("k-alice: %v", ok)
	}
	if ok := check(t, a, "k-anon").GetOk(); ok == nil || len(ok.Headers) != 0 || !slices.Contains(ok.HeadersToRemove, "x-api-key-name") {
		t.Fatalf("k-anon: %v, want no header set and x-api-key-name removed", ok)
	}
}

func TestMissingOrUnknownKeyIsDenied401WithChallenge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	writeKeys(t, path, "k1\n")
	a, err := newAuthorizer(path, "x-api-key", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"", "k2", "k1x"} {
		d := check(t, a, key).GetDenied()
		if d == nil || d.Status != 401 || d.Headers[0].Header.Key != "www-authenticate" {
			t.Fatalf("key %q: %v", key, d)
		}
	}
}

func TestKeysFileIsReReadWhenItChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	writeKeys(t, path, "old\n")
	a, err := newAuthorizer(path, "x-api-key", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if check(t, a, "old").GetOk() == nil {
		t.Fatal("old key denied")
	}
	writeKeys(t, path, "new\n")
	if check(t, a, "new").GetOk() == nil || check(t, a, "old").GetDenied() == nil {
		t.Fatal("the changed file was not re-read")
	}
	// A broken file keeps the last good keys.
	writeKeys(t, path, "a b c\n")
	if check(t, a, "new").GetOk() == nil {
		t.Fatal("an invalid file dropped the last good keys")
	}
}

func TestPluginBinaryServesKeys(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	writeKeys(t, keys, "k-bin bin\n")
	p := plugintest.Launch(t, plugin.Config{
		Name: "apikey-bin",
		Path: plugintest.Build(t, "github.com/sluice-proxy/sluice/plugins/apikey"),
		Args: []string{"-keys", keys, "-recheck", "0s"},
	})
	a, err := plugin.Dial(p.Reattach())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if check(t, a, "k-bin").GetOk() == nil || check(t, a, "nope").GetDenied() == nil {
		t.Fatal("the plugin binary did not apply its keys file")
	}
	writeKeys(t, keys, "k-two\n")
	if check(t, a, "k-two").GetOk() == nil {
		t.Fatal("the plugin binary did not re-read its keys file")
	}
}
