package httpinspector

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/sluice-proxy/sluice/gateway/internal/fuzzcorpus"
)

// FuzzDetect checks the inspector on arbitrary first bytes: it never
// panics, never peeks past MaxInspectSize+1 bytes, and its answer does not
// depend on how the bytes were split into reads.
func FuzzDetect(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		asked := 0
		peek := func(n int) ([]byte, error) {
			asked = max(asked, n)
			if n > len(data) {
				return data, io.EOF
			}
			return data[:n], nil
		}
		protos, err := inspect(peek)
		if asked > MaxInspectSize+1 {
			t.Fatalf("peeked %d bytes", asked)
		}
		if err != nil && err != io.EOF {
			t.Fatalf("error %v", err)
		}
		// all bytes at once gives the same answer
		all, _ := detect(data[:min(len(data), MaxInspectSize)])
		if len(data) > 0 && fmt.Sprint(all) != fmt.Sprint(protos) && protos != nil {
			t.Fatalf("split: %q, whole: %q", protos, all)
		}
		if len(protos) == 1 && protos[0] == "h2c" && !bytes.HasPrefix(data, h2Preface) {
			t.Fatalf("h2c without the preface: %q", data)
		}
	})
}

// corpusSeeds are the committed seeds of FuzzDetect.
var corpusSeeds = map[string]string{
	"http11":       "GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n",
	"http10":       "HEAD / HTTP/1.0\r\n\r\n",
	"options_star": "OPTIONS * HTTP/1.1\r\n\r\n",
	"connect":      "CONNECT example.com:443 HTTP/1.1\r\n\r\n",
	"absolute":     "GET http://example.com/x HTTP/1.1\r\n\r\n",
	"h2c":          "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"h2c_partial":  "PRI * HTTP/2.0\r\n\r\n",
	"http20_line":  "GET / HTTP/2.0\r\n",
	"tls":          "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
	"ssh":          "SSH-2.0-OpenSSH_9.6\r\n",
	"bare_lf":      "GET / HTTP/1.1\n",
	"partial":      "GET / HT",
	"empty_method": " / HTTP/1.1\r\n",
}

// TestWriteCorpus writes testdata/fuzz/FuzzDetect when
// SLUICE_WRITE_CORPUS=1; otherwise it checks the committed seeds exist.
func TestWriteCorpus(t *testing.T) {
	seeds := make(map[string][]byte, len(corpusSeeds))
	for name, s := range corpusSeeds {
		seeds[name] = []byte(s)
	}
	fuzzcorpus.Sync(t, "FuzzDetect", seeds)
}
