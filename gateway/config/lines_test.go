package config

import "testing"

const linesTOML = `# comment [not.a.table]
title = "x" # trailing [comment]
multi = """
[fake]
key = 1
"""
lit = '''
[[fake]]'''
arr = [
  1, # [x]
  "two",
  [3, 4],
  { a = 1, b.c = 2 },
]
"quoted.key" = 1
dotted.key.path = true
[[listener]]
name = "a"
[[listener.filter_chain]]
[[listener.filter_chain]]
[listener.filter_chain.tls]
cert = "c"
[[listener]]
[[listener.filter_chain]]
[[listener.filter_chain.filter]]
config = { x = { y = [ { z = 1 } ] } }
[ server . 'sub' ]
x = """a\"""b"""
y = 1
`

func TestIndexLines(t *testing.T) {
	lines := indexLines([]byte(linesTOML))
	for path, want := range map[string]int{
		"title":                                2,
		"multi":                                3,
		"lit":                                  7,
		"arr":                                  9,
		"arr[0]":                               10,
		"arr[1]":                               11,
		"arr[2]":                               12,
		"arr[2][1]":                            12,
		"arr[3].a":                             13,
		"arr[3].b.c":                           13,
		"quoted.key":                           15,
		"dotted.key.path":                      16,
		"listener":                             17,
		"listener[0]":                          17,
		"listener[0].name":                     18,
		"listener[0].filter_chain[0]":          19,
		"listener[0].filter_chain[1]":          20,
		"listener[0].filter_chain[1].tls":      21,
		"listener[0].filter_chain[1].tls.cert": 22,
		"listener[1]":                          23,
		"listener[1].filter_chain[0]":          24,
		"listener[1].filter_chain[0].filter[0].config.x.y[0].z": 26,
		"server.sub":   27,
		"server.sub.x": 28,
		"server.sub.y": 29,
	} {
		if got := lines[path]; got != want {
			t.Errorf("line of %s = %d, want %d", path, got, want)
		}
	}
	for _, bogus := range []string{"fake", "not.a.table", "x", "listener[0].filter_chain[2]", "listener[2]"} {
		if l, ok := lines[bogus]; ok {
			t.Errorf("line index has %s (line %d), which is not a key", bogus, l)
		}
	}
}

func TestLine(t *testing.T) {
	c := &Config{lines: indexLines([]byte(linesTOML))}
	for path, want := range map[string]int{
		"listener[0].name":                                 18,
		"listener[0].address":                              17,
		"listener[0].filter_chain[1].tls.key":              21,
		"listener[1].filter_chain[0].filter[0].name":       25,
		"listener[1].filter_chain[0].filter[0].config.x.q": 26,
		"cluster[0].name":                                  0,
		"":                                                 0,
	} {
		if got := c.Line(path); got != want {
			t.Errorf("Line(%q) = %d, want %d", path, got, want)
		}
	}
	if got := (*Config)(nil).Line("x"); got != 0 {
		t.Errorf("nil Config Line = %d", got)
	}
}
