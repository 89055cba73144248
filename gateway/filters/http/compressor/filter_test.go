package compressor

import (
	"testing"

	"github.com/sluice-proxy/sluice/gateway/httpfilter"
	"github.com/sluice-proxy/sluice/gateway/registry"
)

// buildChain builds a compressor per config and tells each its chain.
func buildChain(t testing.TB, cs ...Config) []*Factory {
	t.Helper()
	var fs []*Factory
	var chain []httpfilter.Factory
	for i := range cs {
		f, err := cs[i].Build(&registry.BuildContext{})
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f.(*Factory))
		chain = append(chain, f.(*Factory))
	}
	chain = append(chain, httpfilter.FactoryFunc(func(httpfilter.DecoderCallbacks) any { return nil })) // a router
	for _, f := range fs {
		if err := f.ChainBuilt(chain); err != nil {
			t.Fatal(err)
		}
	}
	return fs
}

// TestChooseEncoding checks, for Accept-Encoding values and chains of
// compressors, which coding compresses a text/html response.
func TestChooseEncoding(t *testing.T) {
	gz, br, zs := Config{}, Config{Library: "brotli"}, Config{Library: "zstd"}
	jsonOnlyBr := Config{Library: "brotli", Name: "json", ContentType: []string{"application/json"}}
	gz9 := Config{Name: "gzip9", CompressionLevel: "9"}
	for _, tc := range []struct {
		fields []string
		chain  []Config
		want   string // the chosen coding, "" for none
		out    outcome
	}{
		{nil, []Config{gz}, "", outNone},
		{[]string{"gzip"}, []Config{gz}, "gzip", outNamed},
		{[]string{"GZIP;q=0.5"}, []Config{gz}, "gzip", outNamed},
		{[]string{"x-gzip"}, []Config{gz}, "gzip", outNamed},
		{[]string{"br, deflate"}, []Config{gz}, "", outIdentity},
		{[]string{"gzip;q=0"}, []Config{gz}, "", outIdentity},
		{[]string{"gzip;q=0, *"}, []Config{gz}, "", outIdentity}, // gzip named: "*" does not override it
		{[]string{"*"}, []Config{gz}, "gzip", outWildcard},
		{[]string{"*;q=0"}, []Config{gz}, "", outIdentity},
		{[]string{"gzip;q=0.5, identity"}, []Config{gz}, "", outIdentity},
		{[]string{"gzip, identity;q=0.5"}, []Config{gz}, "gzip", outNamed},
		{[]string{"br", "gzip"}, []Config{gz}, "gzip", outNamed}, // fields combine
		{[]string{"gzip;q=2"}, []Config{gz}, "", outInvalid},
		{[]string{"gzip;q=NaN"}, []Config{gz}, "", outInvalid},
		{[]string{"gzip;q=1.5"}, []Config{gz}, "", outInvalid},
		{[]string{"gzip;q=0.001, identity;q=0"}, []Config{gz}, "gzip", outNamed},
		{[]string{"gzip;level=3"}, []Config{gz}, "", outInvalid},
		// A malformed element is skipped; the others still count.
		{[]string{"gzip;q=1.5, deflate"}, []Config{gz}, "", outIdentity},
		{[]string{"br;q=abc, gzip;q=0.5"}, []Config{gz}, "gzip", outNamed},
		{[]string{"gzip;q=0.5, br;q=abc"}, []Config{gz}, "gzip", outNamed},
		{[]string{"gzip;q=2", "gzip;q=0.2"}, []Config{gz}, "gzip", outNamed},
		{[]string{"gzip;q=0.2", "gzip;q=x"}, []Config{gz}, "gzip", outNamed},
		{[]string{"gzip;q=x", "identity;q=x"}, []Config{gz}, "", outInvalid},
		{[]string{""}, []Config{gz}, "", outIdentity},

		// Several compressors: the client's preference, then chain order.
		{[]string{"br"}, []Config{br, gz, zs}, "br", outNamed},
		{[]string{"Br"}, []Config{gz, br, zs}, "br", outNamed},
		{[]string{"zstd"}, []Config{br, gz, zs}, "zstd", outNamed},
		{[]string{"gzip;q=1, br;q=0.5"}, []Config{br, gz, zs}, "gzip", outNamed},
		{[]string{"gzip, br, zstd"}, []Config{br, gz, zs}, "br", outNamed},
		{[]string{"gzip, br, zstd"}, []Config{zs, gz, br}, "zstd", outNamed},
		{[]string{"gzip, deflate, br, zstd"}, []Config{gz, br}, "gzip", outNamed},
		{[]string{"*"}, []Config{br, gz, zs}, "br", outWildcard},
		{[]string{"*"}, []Config{zs, br}, "zstd", outWildcard},
		{[]string{"br;q=0, *"}, []Config{br, gz, zs}, "gzip", outWildcard},
		{[]string{"br;q=0, gzip;q=0, *"}, []Config{br, gz, zs}, "zstd", outWildcard},
		{[]string{"br;q=0.5, *;q=0.8"}, []Config{br, gz}, "gzip", outWildcard},
		{[]string{"br;q=0.8, *;q=0.5"}, []Config{gz, br}, "br", outNamed},
		{[]string{"gzip;q=0.3, *;q=0.3"}, []Config{br, gz}, "br", outWildcard},
		{[]string{"identity"}, []Config{br, gz, zs}, "", outIdentity},
		{[]string{"br;q=0.5, identity"}, []Config{br, gz, zs}, "", outIdentity},
		{[]string{"br, identity"}, []Config{br, gz, zs}, "br", outNamed}, // a tie goes to compression
		{[]string{"br;q=0, gzip;q=0, zstd;q=0"}, []Config{br, gz, zs}, "", outIdentity},
		{[]string{"*;q=0"}, []Config{br, gz, zs}, "", outIdentity},
		{[]string{"deflate"}, []Config{br, gz, zs}, "", outIdentity},
		{[]string{"zstd"}, []Config{br, gz}, "", outIdentity},
		// A compressor that does not compress the type takes no part.
		{[]string{"br, gzip;q=0.5"}, []Config{jsonOnlyBr, gz}, "gzip", outNamed},
		{[]string{"*"}, []Config{jsonOnlyBr, gz}, "gzip", outWildcard},
		{[]string{"br"}, []Config{jsonOnlyBr, gz}, "", outIdentity},
		// Two compressors of one library: the first.
		{[]string{"gzip"}, []Config{gz9, gz}, "gzip9", outNamed},
	} {
		fs := buildChain(t, tc.chain...)
		a := newAcceptQ()
		for _, f := range tc.fields {
			a.add([]byte(f))
		}
		// Each filter of the chain must come to the same choice.
		for self, fa := range fs {
			if !fa.hasType([]byte("text/html")) {
				continue
			}
			i, out := choose(&a, fa.chain, self, []byte("text/html"))
			got := ""
			if i >= 0 {
				got = fs[i].lib.Coding()
				if fs[i].name == "gzip9" {
					got = "gzip9"
				}
			}
			if got != tc.want || out != tc.out {
				t.Errorf("Accept-Encoding %q, chain %s, seen from filter %d: chose %q (%d), want %q (%d)",
					tc.fields, chainString(fs), self, got, out, tc.want, tc.out)
			}
		}
	}
}

func chainString(fs []*Factory) string {
	s := ""
	for i, f := range fs {
		if i > 0 {
			s += ","
		}
		s += f.name + ":" + f.lib.String()
	}
	return s
}

// TestChainRemovesAcceptEncodingOnce checks that with
// remove_accept_encoding_header on any compressor of a chain, only the last
// removes the field, so that every compressor reads it.
func TestChainRemovesAcceptEncodingOnce(t *testing.T) {
	fs := buildChain(t, Config{Library: "brotli", RemoveAcceptEncodingHeader: true}, Config{}, Config{Library: "zstd"})
	for i, f := range fs {
		if f.removeNow != (i == 2) {
			t.Errorf("compressor %d removes Accept-Encoding: %v", i, f.removeNow)
		}
	}
	fs = buildChain(t, Config{Library: "brotli"}, Config{})
	if fs[0].removeNow || fs[1].removeNow {
		t.Error("a compressor removes Accept-Encoding though none is configured to")
	}
}

func TestResponseChecks(t *testing.T) {
	fa, err := (&Config{}).Build(&registry.BuildContext{})
	if err != nil {
		t.Fatal(err)
	}
	f := fa.(*Factory).NewFilter(nil).(*filter)
	for _, tc := range []struct {
		name   string
		fields []string
		want   bool
	}{
		{"listed type with charset", []string{"content-type", "text/html; charset=utf-8"}, true},
		{"type case", []string{"content-type", "Application/JSON"}, true},
		{"unlisted type", []string{"content-type", "image/png"}, false},
		{"no type", nil, false},
		{"encoded", []string{"content-type", "text/html", "content-encoding", "br"}, false},
		{"identity coding", []string{"content-type", "text/html", "content-encoding", "identity"}, true},
		{"no-transform", []string{"content-type", "text/html", "cache-control", "max-age=3, No-Transform"}, false},
	} {
		h := &httpfilter.ResponseHeaders{Status: 200}
		for i := 0; i+1 < len(tc.fields); i += 2 {
			h.Add(tc.fields[i], tc.fields[i+1])
		}
		if got := f.compressible(h); got != tc.want {
			t.Errorf("%s: compressible %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	neg, big, small, q12 := -1, 25, 9, 12
	zero, z23, w24 := 0, 23, 24
	for _, tc := range []struct {
		c   Config
		key string
	}{
		{Config{CompressionLevel: "11"}, "compression_level"},
		{Config{CompressionLevel: "fast"}, "compression_level"},
		{Config{MinContentLength: &neg}, "min_content_length"},
		{Config{ContentType: []string{"text"}}, "content_type[0]"},
		{Config{Name: "a.b"}, "name"},
		{Config{Library: "deflate"}, "library"},
		{Config{Library: "Brotli"}, "library"},
		{Config{Library: "brotli", CompressionLevel: "9"}, "compression_level"},
		{Config{Library: "zstd", CompressionLevel: "9"}, "compression_level"},
		{Config{Brotli: &BrotliConfig{}}, "brotli"},
		{Config{Library: "zstd", Brotli: &BrotliConfig{}}, "brotli"},
		{Config{Zstd: &ZstdConfig{}}, "zstd"},
		{Config{Library: "brotli", Brotli: &BrotliConfig{Quality: &q12}}, "brotli.quality"},
		{Config{Library: "brotli", Brotli: &BrotliConfig{Quality: &neg}}, "brotli.quality"},
		{Config{Library: "brotli", Brotli: &BrotliConfig{WindowBits: &big}}, "brotli.window_bits"},
		{Config{Library: "brotli", Brotli: &BrotliConfig{WindowBits: &small}}, "brotli.window_bits"},
		{Config{Library: "zstd", Zstd: &ZstdConfig{CompressionLevel: &zero}}, "zstd.compression_level"},
		{Config{Library: "zstd", Zstd: &ZstdConfig{CompressionLevel: &z23}}, "zstd.compression_level"},
	} {
		_, err := tc.c.Build(&registry.BuildContext{})
		fe, ok := err.(*registry.FieldError)
		if !ok || fe.Key != tc.key {
			t.Errorf("%+v: error %v, want one naming %s", tc.c, err, tc.key)
		}
	}
	// Two compressors of one library and name would share their stats.
	a, _ := (&Config{Library: "brotli"}).Build(&registry.BuildContext{})
	b, _ := (&Config{Library: "brotli"}).Build(&registry.BuildContext{})
	chain := []httpfilter.Factory{a.(*Factory), b.(*Factory)}
	if err := a.(*Factory).ChainBuilt(chain); err != nil {
		t.Errorf("first of two brotli compressors: %v", err)
	}
	err := b.(*Factory).ChainBuilt(chain)
	if fe, ok := err.(*registry.FieldError); !ok || fe.Key != "name" {
		t.Errorf("second brotli compressor of the same name: error %v, want one naming name", err)
	}
	// Good configs build, with the library's stat prefix.
	for _, c := range []Config{
		{Library: "brotli", Brotli: &BrotliConfig{Quality: &zero, WindowBits: &w24}},
		{Library: "zstd", Name: "fast", Zstd: &ZstdConfig{EnableChecksum: true}},
		{Library: "gzip", CompressionLevel: "best_speed"},
	} {
		if _, err := c.Build(&registry.BuildContext{}); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	if got := (&Config{Library: "zstd"}).statScope("http.x."); got != "http.x.compressor.zstd.zstd." {
		t.Errorf("zstd stat scope %q", got)
	}
	if got := (&Config{Library: "brotli", Name: "text"}).statScope("http.x."); got != "http.x.compressor.text.brotli." {
		t.Errorf("brotli stat scope %q", got)
	}
}

// TestDecisionsDoNotAllocate checks that reading Accept-Encoding, choosing
// among a chain's compressors and reading a response's fields, which the
// filter does for every request, allocates nothing.
func TestDecisionsDoNotAllocate(t *testing.T) {
	fs := buildChain(t, Config{Library: "brotli"}, Config{}, Config{Library: "zstd"})
	f := fs[1].NewFilter(nil).(*filter)
	accept := []byte("br;q=0.7, gzip;q=0.8, deflate, zstd;q=0.2, *;q=0.1, identity;q=0.5")
	h := &httpfilter.ResponseHeaders{Status: 200}
	h.Add("content-type", "text/html; charset=utf-8")
	h.Add("cache-control", "public, max-age=60")
	var got int
	n := testing.AllocsPerRun(100, func() {
		a := newAcceptQ()
		a.add(accept)
		if !f.compressible(h) {
			t.Fatal("text/html not compressible")
		}
		got, _ = choose(&a, f.fa.chain, f.fa.self, mediaType(h))
	})
	if got != 1 || n != 0 {
		t.Errorf("chose compressor %d with %v allocations per request; want gzip (1) with none", got, n)
	}
}
