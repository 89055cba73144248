package accesslog

import (
	"encoding/json"
	"testing"
)

func FuzzCompile(f *testing.F) {
	for _, s := range []string{DefaultFormat, "%REQ(A?B):3%", "%%", "%RESP(", "x%DURATION%y",
		"%START_TIME(%s.%3f %Y%)%", "%GRPC_STATUS(NUMBER)%", "%ENVIRONMENT(HOME):2%", "%REQ_WITHOUT_QUERY(:PATH)%",
		"%DOWNSTREAM_PEER_SUBJECT%%CONNECTION_ID%"} {
		f.Add(s)
	}
	rec := sampleRecord()
	f.Fuzz(func(t *testing.T, format string) {
		fm, err := Compile(format)
		if err != nil {
			return
		}
		fm.Format(nil, rec)
	})
}

func FuzzJSONValue(f *testing.F) {
	for _, s := range []string{"plain", "a\"b\\c", "\x00\x1f\n\r\t", "\xff\xfe", "é€"} {
		f.Add(s)
	}
	fm, err := CompileJSON(map[string]string{"v": "%REQ(X-V)%", "w": "<%REQ(X-V)%>"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, v string) {
		rec := sampleRecord()
		rec.Request.Add("x-v", v)
		line := fm.Format(nil, rec)
		var out map[string]any
		if err := json.Unmarshal(line, &out); err != nil {
			t.Fatalf("invalid JSON for %q: %q: %v", v, line, err)
		}
	})
}
