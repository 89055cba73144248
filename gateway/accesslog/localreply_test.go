package accesslog

import (
	"testing"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
)

// TestLocalReplyBodyOperator checks %LOCAL_REPLY_BODY%: the record's local
// reply text, empty (not "-" or null) when there is none.
func TestLocalReplyBodyOperator(t *testing.T) {
	f, err := Compile("[%LOCAL_REPLY_BODY%]")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(f.Format(nil, &Record{LocalReplyBody: "no route"})); got != "[no route]" {
		t.Errorf("text: %q", got)
	}
	if got := string(f.Format(nil, &Record{})); got != "[]" {
		t.Errorf("empty text: %q, want []", got)
	}
	j, err := CompileJSON(map[string]string{"msg": "%LOCAL_REPLY_BODY%"})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(j.Format(nil, &Record{LocalReplyBody: `a "b"`})); got != `{"msg":"a \"b\""}`+"\n" {
		t.Errorf("json: %q", got)
	}
	if got := string(j.Format(nil, &Record{})); got != `{"msg":""}`+"\n" {
		t.Errorf("empty json: %q", got)
	}
}

// TestCompileFilterMatches checks the exported matcher keeps what the
// access log's filter keeps and names a bad key below the given one.
func TestCompileFilterMatches(t *testing.T) {
	m, err := CompileFilter(&Filter{StatusCode: &Comparison{Op: "GE", Value: 500}}, "f")
	if err != nil {
		t.Fatal(err)
	}
	if !m.Match(&Record{Info: &httpfilter.StreamInfo{ResponseCode: 503}}) || m.Match(&Record{Info: &httpfilter.StreamInfo{ResponseCode: 404}}) {
		t.Error("status_code_filter GE 500 does not match as it should")
	}
	if _, err := CompileFilter(&Filter{}, "x.filter"); err == nil || err.Error() == "" {
		t.Error("an empty filter compiled")
	}
}
