package main

import (
	"bufio"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/plugins/authapi"
)

const defaultRecheck = time.Second

// authorizer checks API keys against a file. It is safe for concurrent use.
type authorizer struct {
	path    string
	header  string
	recheck time.Duration
	keep    bool

	mu      sync.Mutex
	checked time.Time         // when the file was last stat'ed
	stamp   fileStamp         // what it looked like when loaded
	keys    map[string]string // key -> name ("" when unnamed)
}

// fileStamp identifies a version of the keys file.
type fileStamp struct {
	mod  time.Time
	size int64
	ino  uint64
}

func newAuthorizer(path, header string, recheck time.Duration, keep bool) (*authorizer, error) {
	if path == "" {
		return nil, errors.New("apikey: -keys is required")
	}
	a := &authorizer{path: path, header: strings.ToLower(header), recheck: recheck, keep: keep}
	if err := a.reload(time.Now()); err != nil {
		return nil, err
	}
	return a, nil
}

// Check implements authapi.Authorizer.
func (a *authorizer) Check(_ context.Context, r *authapi.CheckRequest) (*authapi.CheckResponse, error) {
	key := r.GetHttp().GetHeaders()[a.header]
	keys := a.current()
	name, ok := lookup(keys, key)
	if key == "" || !ok {
		return authapi.Deny(401, "missing or invalid API key\n",
			"www-authenticate", fmt.Sprintf(`ApiKey realm="sluice", header=%q`, a.header)), nil
	}
	resp := &authapi.OkResponse{}
	if name != "" {
		resp.Headers = append(resp.Headers, authapi.Header("x-api-key-name", name))
	} else {
		// An unnamed key: the client's own x-api-key-name must not pass
		// for the plugin's.
		resp.HeadersToRemove = append(resp.HeadersToRemove, "x-api-key-name")
	}
	if !a.keep {
		resp.HeadersToRemove = append(resp.HeadersToRemove, a.header)
	}
	return authapi.AllowWith(resp), nil
}

// lookup compares key with every known key in constant time per key, so
// that timing does not reveal how much of a key matched.
func lookup(keys map[string]string, key string) (string, bool) {
	found, name := false, ""
	for k, n := range keys {
		if subtle.ConstantTimeCompare([]byte(k), []byte(key)) == 1 {
			found, name = true, n
		}
	}
	return name, found
}

// current returns the keys, re-reading the file if it changed (checked at
// most once per recheck interval). A file that became unreadable or invalid
// keeps the last good keys.
func (a *authorizer) current() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if now.Sub(a.checked) >= a.recheck {
		if err := a.reloadLocked(now); err != nil {
			fmt.Fprintln(os.Stderr, err) // go-plugin forwards stderr to sluice's log
		}
	}
	return a.keys
}

func (a *authorizer) reload(now time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reloadLocked(now)
}

func (a *authorizer) reloadLocked(now time.Time) error {
	a.checked = now
	fi, err := os.Stat(a.path)
	if err != nil {
		return fmt.Errorf("apikey: %w", err)
	}
	st := stampOf(fi)
	if a.keys != nil && st == a.stamp {
		return nil
	}
	keys, err := readKeys(a.path)
	if err != nil {
		return err
	}
	a.keys, a.stamp = keys, st
	return nil
}

// readKeys parses a keys file.
func readKeys(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("apikey: %w", err)
	}
	defer f.Close()
	keys := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		switch len(fields) {
		case 0:
		case 1, 2:
			keys[fields[0]] = ""
			if len(fields) == 2 {
				keys[fields[0]] = fields[1]
			}
		default:
			return nil, fmt.Errorf("apikey: %s:%d: want a key and an optional name", path, n)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("apikey: %s: %w", path, err)
	}
	return keys, nil
}
