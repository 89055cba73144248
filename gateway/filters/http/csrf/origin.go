package csrf

// SourceOrigin returns a request's source origin as Envoy's CSRF filter
// reads it: the host[:port] of the Origin field's URL, else of the Referer
// field's; a value that is not an absolute URL stands for itself (so
// "null" is a source origin that matches no host). Empty when neither
// field has a value. It does not allocate.
func SourceOrigin(origin, referer []byte) []byte {
	if o := HostAndPort(origin); len(o) > 0 {
		return o
	}
	return HostAndPort(referer)
}

// TargetOrigin returns the origin a request goes to: the host[:port] of
// its authority (Host field), as Envoy's CSRF filter reads it from
// "<scheme>://<host>".
func TargetOrigin(authority []byte) []byte {
	if len(authority) == 0 {
		return nil
	}
	if a, ok := authorityOf(authority); ok {
		return a
	}
	return authority
}

// HostAndPort returns the host[:port] of an absolute URL
// (scheme "://" [userinfo "@"] host [":" port] [path-abempty] ["?" query]
// ["#" fragment]), or v itself when v is not one. It does not allocate.
func HostAndPort(v []byte) []byte {
	if len(v) == 0 {
		return nil
	}
	i := schemeEnd(v)
	if i < 0 || len(v) < i+3 || v[i+1] != '/' || v[i+2] != '/' {
		return v
	}
	end := len(v)
	for j := i + 3; j < len(v); j++ {
		if c := v[j]; c == '/' || c == '?' || c == '#' {
			end = j
			break
		}
	}
	if a, ok := authorityOf(v[i+3 : end]); ok {
		return a
	}
	return v
}

// schemeEnd returns the index of the ':' ending v's scheme
// (ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )), or -1.
func schemeEnd(v []byte) int {
	for i, c := range v {
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			return i
		default:
			return -1
		}
	}
	return -1
}

// authorityOf returns an authority's host[:port] without userinfo, and
// whether it is well formed: a non-empty host (a reg-name, or an IP
// literal in brackets) and an optional port of digits.
func authorityOf(a []byte) ([]byte, bool) {
	for i := len(a) - 1; i >= 0; i-- {
		if a[i] == '@' {
			a = a[i+1:]
			break
		}
	}
	if len(a) == 0 {
		return nil, false
	}
	host, port := a, []byte(nil)
	if a[0] == '[' {
		j := 1
		for j < len(a) && a[j] != ']' {
			j++
		}
		if j == len(a) || j == 1 {
			return nil, false
		}
		host, port = a[:j+1], a[j+1:]
		for _, c := range host[1:j] {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '.') {
				return nil, false
			}
		}
	} else {
		for j, c := range a {
			if c == ':' {
				host, port = a[:j], a[j:]
				break
			}
		}
		if len(host) == 0 {
			return nil, false
		}
		for _, c := range host {
			if c <= ' ' || c >= 0x7f || c == '[' || c == ']' {
				return nil, false
			}
		}
	}
	if len(port) > 0 {
		if port[0] != ':' || len(port) == 1 || len(port) > 6 {
			return nil, false
		}
		for _, c := range port[1:] {
			if c < '0' || c > '9' {
				return nil, false
			}
		}
	}
	return a, true
}
