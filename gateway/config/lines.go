package config

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Line returns the line of path in the file c was loaded from: the line
// where the longest known prefix of path is defined, or 0 if none is known.
// Paths use the syntax of error messages: "listener[0].filter_chain[1].name".
func (c *Config) Line(path string) int {
	if c == nil {
		return 0
	}
	if strings.Contains(path, `"`) {
		// A quoted key (a filter name in typed_per_filter_config) is
		// indexed by its bare text.
		path = strings.ReplaceAll(path, `"`, "")
	}
	return lineOf(c.lines, path)
}

// lineOf returns the line of the longest prefix of path found in lines.
func lineOf(lines map[string]int, path string) int {
	for path != "" {
		if l, ok := lines[path]; ok {
			return l
		}
		path = parentPath(path)
	}
	return 0
}

// parentPath drops the last component of a key path: "a.b[2]" → "a.b",
// "a.b" → "a", "a" → "".
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
		return ""
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

// joinKey appends key to the table path p.
func joinKey(p, key string) string {
	if p == "" {
		return key
	}
	return p + "." + key
}

// indexKey appends an array index to p.
func indexKey(p string, i int) string {
	return p + "[" + strconv.Itoa(i) + "]"
}

// MaxKeyDepth bounds the nesting of a key path: table names, dotted key
// parts, arrays and inline tables together. Deeper documents are rejected
// before decoding, as decoding them costs time quadratic in their depth.
const MaxKeyDepth = 32

// lineIndex maps the key paths of a TOML document to the lines that define
// them. It understands just enough TOML to follow tables, arrays of tables,
// dotted keys, inline tables, arrays and multi-line strings; its result is
// exact for documents the TOML parser accepts, and it never fails: on
// anything it does not understand it skips ahead. Paths deeper than
// MaxKeyDepth are not recorded.
type lineIndex struct {
	src   []byte
	pos   int
	line  int
	lines map[string]int
	// aot counts the elements of each array of tables, keyed by the
	// array's path with its parents' indices ("listener[0].filter_chain").
	aot map[string]int
	// tooDeep is the first line with a path deeper than MaxKeyDepth.
	tooDeep int
}

// indexLines returns the key-path → line map of src.
func indexLines(src []byte) map[string]int { return scanLines(src).lines }

// scanLines indexes src.
func scanLines(src []byte) *lineIndex {
	s := &lineIndex{src: src, line: 1, lines: map[string]int{}, aot: map[string]int{}}
	table, parts := "", 0
	for s.pos < len(s.src) {
		start := s.pos
		s.skipSpace(true)
		if s.pos >= len(s.src) {
			break
		}
		if s.src[s.pos] == '[' {
			table, parts = s.header()
		} else {
			s.keyValue(table, parts)
		}
		if s.pos == start {
			s.advance()
		}
	}
	return s
}

// deep reports whether a path of n parts is too deep to record, noting the
// first line where that happens.
func (s *lineIndex) deep(n, line int) bool {
	if n <= MaxKeyDepth {
		return false
	}
	if s.tooDeep == 0 {
		s.tooDeep = line
	}
	return true
}

// set records the line of path unless it is already known.
func (s *lineIndex) set(path string, line int) {
	if path == "" {
		return
	}
	if _, ok := s.lines[path]; !ok {
		s.lines[path] = line
	}
}

// advance moves past one byte, counting newlines.
func (s *lineIndex) advance() {
	if s.pos < len(s.src) {
		if s.src[s.pos] == '\n' {
			s.line++
		}
		s.pos++
	}
}

// skipSpace skips blanks and comments, and newlines too if nl is set.
func (s *lineIndex) skipSpace(nl bool) {
	for s.pos < len(s.src) {
		switch c := s.src[s.pos]; {
		case c == ' ' || c == '\t':
			s.pos++
		case c == '\r' || c == '\n':
			if !nl {
				return
			}
			s.advance()
		case c == '#':
			for s.pos < len(s.src) && s.src[s.pos] != '\n' {
				s.pos++
			}
		default:
			return
		}
	}
}

// header reads a "[a.b]" or "[[a.b]]" header and returns the path of the
// table it opens and its number of parts.
func (s *lineIndex) header() (string, int) {
	line := s.line
	s.pos++
	double := s.pos < len(s.src) && s.src[s.pos] == '['
	if double {
		s.pos++
	}
	keys := s.key()
	s.skipSpace(false)
	for s.pos < len(s.src) && s.src[s.pos] == ']' {
		s.pos++
	}
	if s.deep(len(keys), line) {
		return "", len(keys)
	}
	p := ""
	for i, k := range keys {
		p = joinKey(p, k)
		last := i == len(keys)-1
		if last && double {
			n := s.aot[p]
			s.aot[p] = n + 1
			s.set(p, line)
			p = indexKey(p, n)
		} else if n, ok := s.aot[p]; ok && n > 0 {
			p = indexKey(p, n-1)
		}
		s.set(p, line)
	}
	return p, len(keys)
}

// keyValue reads "key = value" inside table, whose path has parts parts,
// and records its paths.
func (s *lineIndex) keyValue(table string, parts int) {
	line := s.line
	keys := s.key()
	if len(keys) == 0 {
		return
	}
	p := table
	parts += len(keys)
	if !s.deep(parts, line) {
		for _, k := range keys {
			p = joinKey(p, k)
			s.set(p, line)
		}
	}
	s.skipSpace(false)
	if s.pos < len(s.src) && s.src[s.pos] == '=' {
		s.pos++
	}
	s.skipSpace(false)
	s.value(p, parts)
}

// key reads a possibly dotted key of bare and quoted parts.
func (s *lineIndex) key() []string {
	var keys []string
	for {
		s.skipSpace(false)
		if s.pos >= len(s.src) {
			return keys
		}
		switch c := s.src[s.pos]; {
		case c == '"':
			keys = append(keys, s.basicString())
		case c == '\'':
			keys = append(keys, s.literalString())
		case isBareKeyByte(c):
			start := s.pos
			for s.pos < len(s.src) && isBareKeyByte(s.src[s.pos]) {
				s.pos++
			}
			keys = append(keys, string(s.src[start:s.pos]))
		default:
			return keys
		}
		s.skipSpace(false)
		if s.pos >= len(s.src) || s.src[s.pos] != '.' {
			return keys
		}
		s.pos++
	}
}

func isBareKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// value skips one value, recording the paths of array elements and inline
// table keys under p.
func (s *lineIndex) value(p string, parts int) {
	if s.pos >= len(s.src) {
		return
	}
	switch s.src[s.pos] {
	case '"':
		if s.hasPrefix(`"""`) {
			s.multiline('"')
		} else {
			s.basicString()
		}
	case '\'':
		if s.hasPrefix(`'''`) {
			s.multiline('\'')
		} else {
			s.literalString()
		}
	case '[':
		s.array(p, parts)
	case '{':
		s.inlineTable(p, parts)
	default:
		for s.pos < len(s.src) {
			switch s.src[s.pos] {
			case ',', ']', '}', '#', '\n', '\r':
				return
			}
			s.pos++
		}
	}
}

// array reads "[v, v, ...]", recording p[i] for each element.
func (s *lineIndex) array(p string, parts int) {
	s.pos++
	parts++
	for i := 0; s.pos < len(s.src); {
		s.skipSpace(true)
		if s.pos >= len(s.src) {
			return
		}
		switch s.src[s.pos] {
		case ']':
			s.pos++
			return
		case ',':
			s.pos++
			continue
		}
		start := s.pos
		ep := p
		if !s.deep(parts, s.line) {
			ep = indexKey(p, i)
			s.set(ep, s.line)
		}
		s.value(ep, parts)
		if s.pos == start {
			s.advance()
		}
		i++
	}
}

// inlineTable reads "{k = v, ...}", recording p.k for each key.
func (s *lineIndex) inlineTable(p string, parts int) {
	s.pos++
	for s.pos < len(s.src) {
		s.skipSpace(true)
		if s.pos >= len(s.src) {
			return
		}
		switch s.src[s.pos] {
		case '}':
			s.pos++
			return
		case ',':
			s.pos++
			continue
		}
		start := s.pos
		s.keyValue(p, parts)
		if s.pos == start {
			s.advance()
		}
	}
}

func (s *lineIndex) hasPrefix(p string) bool {
	return strings.HasPrefix(string(s.src[s.pos:min(len(s.src), s.pos+len(p))]), p)
}

// multiline skips a multi-line string delimited by three q bytes (and up to
// two more q bytes that belong to its content).
func (s *lineIndex) multiline(q byte) {
	s.pos += 3
	for s.pos < len(s.src) {
		c := s.src[s.pos]
		if c == '\\' && q == '"' {
			s.advance()
			s.advance()
			continue
		}
		if c == q && s.hasPrefix(string([]byte{q, q, q})) {
			s.pos += 3
			for n := 0; n < 2 && s.pos < len(s.src) && s.src[s.pos] == q; n++ {
				s.pos++
			}
			return
		}
		s.advance()
	}
}

// literalString reads a single-line 'literal' string and returns its text.
func (s *lineIndex) literalString() string {
	s.pos++
	start := s.pos
	for s.pos < len(s.src) && s.src[s.pos] != '\'' && s.src[s.pos] != '\n' {
		s.pos++
	}
	v := string(s.src[start:s.pos])
	if s.pos < len(s.src) && s.src[s.pos] == '\'' {
		s.pos++
	}
	return v
}

// basicString reads a single-line "basic" string and returns its text with
// escapes resolved.
func (s *lineIndex) basicString() string {
	s.pos++
	var b strings.Builder
	for s.pos < len(s.src) {
		c := s.src[s.pos]
		switch {
		case c == '"':
			s.pos++
			return b.String()
		case c == '\n':
			return b.String()
		case c == '\\' && s.pos+1 < len(s.src):
			s.pos++
			s.escape(&b)
		default:
			b.WriteByte(c)
			s.pos++
		}
	}
	return b.String()
}

// escape decodes the escape sequence after a backslash.
func (s *lineIndex) escape(b *strings.Builder) {
	c := s.src[s.pos]
	s.pos++
	switch c {
	case 'b':
		b.WriteByte('\b')
	case 't':
		b.WriteByte('\t')
	case 'n':
		b.WriteByte('\n')
	case 'f':
		b.WriteByte('\f')
	case 'r':
		b.WriteByte('\r')
	case 'e':
		b.WriteByte(0x1b)
	case 'x', 'u', 'U':
		n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
		end := min(len(s.src), s.pos+n)
		r, err := strconv.ParseUint(string(s.src[s.pos:end]), 16, 32)
		s.pos = end
		if err == nil && r <= utf8.MaxRune {
			b.WriteRune(rune(r))
		}
	default:
		b.WriteByte(c)
	}
}
