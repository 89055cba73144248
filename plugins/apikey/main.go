// Command apikey is a sluice authorization plugin that allows requests
// carrying an API key listed in a file and denies the others with 401 and a
// www-authenticate header. The file is re-read when it changes.
//
// Usage: apikey -keys FILE [-header x-api-key] [-recheck 1s] [-keep-key]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/sluice-proxy/sluice/plugins/authapi"
)

func main() {
	keys := flag.String("keys", "", "file of API keys: one per line, optionally followed by a name forwarded upstream as x-api-key-name (removed from requests with an unnamed key); # starts a comment")
	header := flag.String("header", "x-api-key", "request header carrying the key")
	recheck := flag.Duration("recheck", defaultRecheck, "how often, at most, the keys file is checked for changes")
	keep := flag.Bool("keep-key", false, "forward the key header upstream (default: removed)")
	flag.Parse()
	a, err := newAuthorizer(*keys, *header, *recheck, *keep)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	authapi.Serve(a)
}
