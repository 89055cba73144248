package admin

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Redacted replaces secret values in /config_dump.
const Redacted = "[redacted]"

// secretWords mark keys whose values are secrets.
var secretWords = []string{"password", "passwd", "secret", "token", "private_key", "api_key", "credential", "authorization", "cookie"}

// IsSecretKey reports whether a config key names a secret.
func IsSecretKey(key string) bool {
	k := strings.ToLower(key)
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// RedactJSON replaces the value of every object key that names a secret
// (see IsSecretKey), at any depth, with Redacted.
func RedactJSON(doc []byte) ([]byte, error) {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, fmt.Errorf("admin: config dump: %w", err)
	}
	out, err := json.MarshalIndent(redact(v), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("admin: config dump: %w", err)
	}
	return out, nil
}

func redact(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if IsSecretKey(k) {
				t[k] = Redacted
			} else {
				t[k] = redact(e)
			}
		}
	case []any:
		for i, e := range t {
			t[i] = redact(e)
		}
	}
	return v
}
