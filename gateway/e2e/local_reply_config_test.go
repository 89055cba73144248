package e2e

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// localReplyConfig is a local_reply_config for the manager's table: no
// route (404) becomes 418 with its own text and an x-orig header naming the
// original status, an upstream connect failure (flag UF) a JSON body, a
// codec error (400) "bad request", everything else the body_format text.
const localReplyConfig = `
      [listener.filter_chain.filter.config.local_reply_config]
        [[listener.filter_chain.filter.config.local_reply_config.mappers]]
        filter = { status_code_filter = { op = "EQ", value = 404 } }
        status_code = 418
        body = "nothing here"
        headers_to_add = [{ key = "x-orig", value = "%RESPONSE_CODE%" }]
        [[listener.filter_chain.filter.config.local_reply_config.mappers]]
        filter = { response_flag_filter = { flags = ["UF"] } }
        body_format_override = { json_format = { code = "%RESPONSE_CODE%", flags = "%RESPONSE_FLAGS%", msg = "%LOCAL_REPLY_BODY%", path = "%REQ(:PATH)%" } }
        [[listener.filter_chain.filter.config.local_reply_config.mappers]]
        filter = { status_code_filter = { op = "EQ", value = 400 } }
        body = "bad request"
        [listener.filter_chain.filter.config.local_reply_config.body_format]
        text_format = "[%RESPONSE_CODE%] %LOCAL_REPLY_BODY%"
`

// TestLocalReplyConfigRewritesEveryLocalReply checks local_reply_config
// over HTTP/1.1, HTTP/2 and HTTP/3: the first matching mapper rewrites the
// status, the text and the headers (headers_to_add sees the original
// status), the body is formatted by the mapper's body_format_override or
// else body_format with the rewritten status, the content-type follows the
// format, an upstream's response is left alone, and a gRPC request's
// trailers-only reply carries the rewritten status as grpc-status and the
// formatted text as grpc-message, as Envoy's sendLocalReply does.
func TestLocalReplyConfigRewritesEveryLocalReply(t *testing.T) {
	ca := testutil.NewCA(t)
	cert, key, _ := ca.Leaf(t, "h3.test")
	up := testutil.Upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(404) // an upstream's 404 is not a local reply
		io.WriteString(w, "upstream 404")
	}))
	cfg := strings.Replace(h3Config("127.0.0.1:0", "127.0.0.1:0", cert, key, up.Addr),
		"    match = { prefix = \"/\" }\n    cluster = \"up\"\n",
		"    match = { prefix = \"/up/\" }\n    cluster = \"up\"\n"+route(`prefix = "/dead/"`, "dead"), 1)
	cfg = strings.ReplaceAll(cfg, `route_config = "local"`, `route_config = "local"`+localReplyConfig)
	cfg += cluster("dead", testutil.DeadAddr(t))
	p := gwtest.Start(t, cfg)

	tlsConf := &tls.Config{ServerName: "h3.test", RootCAs: ca.Pool}
	h1 := &http.Client{Timeout: ioTimeout, Transport: &http.Transport{
		TLSClientConfig: tlsConf,
		TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{},
	}}
	h2 := &http.Client{Timeout: ioTimeout, Transport: &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true}}
	h3 := h3Client(t, ca)
	h3.Timeout = ioTimeout
	for _, c := range []struct {
		name, url string
		client    *http.Client
		proto     int
	}{
		{"HTTP/1.1", "https://" + p.Addr("https"), h1, 1},
		{"HTTP/2", "https://" + p.Addr("https"), h2, 2},
		{"HTTP/3", "https://" + p.Addr("h3"), h3, 3},
	} {
		resp, body := get(t, c.client, c.url+"/nowhere")
		if resp.ProtoMajor != c.proto {
			t.Fatalf("%s: answered over %s", c.name, resp.Proto)
		}
		if resp.StatusCode != 418 || string(body) != "[418] nothing here" || resp.Header.Get("x-orig") != "404" ||
			resp.Header.Get("content-type") != "text/plain" {
			t.Errorf("%s no route: %d %v %q; want 418, x-orig 404, text/plain \"[418] nothing here\"", c.name, resp.StatusCode, resp.Header, body)
		}

		resp, body = get(t, c.client, c.url+"/dead/x")
		var doc struct {
			Code  int    `json:"code"`
			Flags string `json:"flags"`
			Msg   string `json:"msg"`
			Path  string `json:"path"`
		}
		if err := json.Unmarshal(body, &doc); err != nil || resp.StatusCode != 503 ||
			resp.Header.Get("content-type") != "application/json" || doc.Code != 503 || doc.Flags != "UF" ||
			!strings.HasPrefix(doc.Msg, "Service Unavailable") || doc.Path != "/dead/x" {
			t.Errorf("%s connect failure: %d %v %q (%v); want a 503 JSON body", c.name, resp.StatusCode, resp.Header, body, err)
		}

		resp, body = get(t, c.client, c.url+"/up/x")
		if resp.StatusCode != 404 || string(body) != "upstream 404" {
			t.Errorf("%s upstream 404: %d %q; want the upstream's response untouched", c.name, resp.StatusCode, body)
		}

		req, _ := http.NewRequest("POST", c.url+"/pkg.Svc/M", strings.NewReader("\x00\x00\x00\x00\x00"))
		req.Header.Set("content-type", "application/grpc")
		resp, body = do(t, c.client, req)
		// 418 maps to UNKNOWN (2), where the original 404 maps to 12.
		checkTrailersOnly(t, c.name+" gRPC no route", resp, body, "2")
		if m := resp.Header.Get("grpc-message"); m != "[418] nothing here" || resp.Header.Get("x-orig") != "404" {
			t.Errorf("%s gRPC no route: grpc-message %q, x-orig %q; want the formatted text and 404", c.name, m, resp.Header.Get("x-orig"))
		}
	}

	// A request head that fails to parse (HTTP/1.1 codec error) is a local
	// reply too.
	conn, err := tls.Dial("tcp", p.Addr("https"), &tls.Config{ServerName: "h3.test", RootCAs: ca.Pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(ioTimeout))
	fmt.Fprintf(conn, "GET /up/x HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n")
	resp, body := readResponse(t, bufio.NewReader(conn), "GET")
	if resp.StatusCode != 400 || string(body) != "[400] bad request" || resp.Header.Get("content-type") != "text/plain" {
		t.Errorf("codec error: %d %v %q; want 400 \"[400] bad request\"", resp.StatusCode, resp.Header, body)
	}
}

// TestLocalReplyConfigErrorsNameFileLineAndKey checks that a bad
// local_reply_config is refused by `sluice validate` naming the file, the
// line and the key.
func TestLocalReplyConfigErrorsNameFileLineAndKey(t *testing.T) {
	good := simpleConfig(1, "127.0.0.1:1")
	with := func(s string) string {
		return strings.Replace(good, `route_config = "local"`, `route_config = "local"`+s, 1)
	}
	cases := []struct{ name, text, line, key string }{
		{"status out of range", with(strings.Replace(localReplyConfig, "status_code = 418", "status_code = 700", 1)),
			"status_code = 700", `local_reply_config\.mappers\[0\]\.status_code: must be in 200\.\.599`},
		{"bad filter", with(strings.Replace(localReplyConfig, `flags = ["UF"]`, `flags = ["XX"]`, 1)),
			`flags = ["XX"]`, `local_reply_config\.mappers\[1\]\.filter\.response_flag_filter\.flags\[0\]: unknown response flag`},
		{"unknown key", with(strings.Replace(localReplyConfig, `body = "bad request"`, `bodi = "bad request"`, 1)),
			`bodi = "bad request"`, `local_reply_config\.mappers\[2\]\.bodi`},
		{"bad operator", with(strings.Replace(localReplyConfig, "%LOCAL_REPLY_BODY%\"\n", "%NOPE%\"\n", 1)),
			"%NOPE%", `local_reply_config\.body_format\.text_format: .*unknown operator`},
	}
	dir := t.TempDir()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("bad%d.toml", i))
			if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out := gwtest.Exec(t, 30*time.Second, "validate", "-c", path)
			if code != 1 {
				t.Fatalf("validate exit code %d, want 1; output:\n%s", code, out)
			}
			if want := fmt.Sprintf("%s:%d:", path, lineOf(t, tc.text, tc.line)); !strings.Contains(out, want) {
				t.Errorf("validate output does not name %q; output:\n%s", want, out)
			}
			if !regexp.MustCompile(tc.key).MatchString(out) {
				t.Errorf("validate output does not name /%s/; output:\n%s", tc.key, out)
			}
		})
	}
}
