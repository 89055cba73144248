package config

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Compile compiles rr's pattern (RE2, unanchored: every match is replaced)
// and converts its substitution to a template for the pattern's
// ReplaceAll (see RE2Substitution).
func (rr *RegexRewrite) Compile() (*regexp.Regexp, string, error) {
	if rr.Pattern == "" {
		return nil, "", errors.New("pattern: required")
	}
	re, err := regexp.Compile(rr.Pattern)
	if err != nil {
		return nil, "", fmt.Errorf("pattern: invalid regex: %w", err)
	}
	tmpl, err := RE2Substitution(rr.Substitution, re.NumSubexp())
	if err != nil {
		return nil, "", fmt.Errorf("substitution: %w", err)
	}
	return re, tmpl, nil
}

// RE2Substitution converts a substitution in RE2's (and so Envoy's)
// syntax, where \0 is the whole match, \1 to \9 are capture groups and
// "\\" is a backslash, to the equivalent template for Go's
// regexp.ReplaceAll: ${n} for \n and "$$" for a literal '$'. groups is the
// number of capture groups of the pattern; as in RE2, a reference to a
// group the pattern does not have, and a backslash before anything but a
// digit or a backslash, are errors.
func RE2Substitution(sub string, groups int) (string, error) {
	var b strings.Builder
	for i := 0; i < len(sub); i++ {
		switch c := sub[i]; c {
		case '$':
			b.WriteString("$$")
		case '\\':
			if i+1 == len(sub) {
				return "", errors.New(`ends with a lone "\"`)
			}
			i++
			d := sub[i]
			switch {
			case d == '\\':
				b.WriteByte('\\')
			case '0' <= d && d <= '9':
				if n := int(d - '0'); n > groups {
					return "", fmt.Errorf(`\%d refers to a capture group the pattern does not have (it has %d)`, n, groups)
				}
				b.WriteString("${")
				b.WriteByte(d)
				b.WriteByte('}')
			default:
				return "", fmt.Errorf(`invalid escape "\%c": use \0 to \9, or "\\" for a backslash`, d)
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}
