// Command crash is a test plugin: a check of path /exit kills the plugin
// mid-request (exit status 3); a check of /block writes "pending" and a
// newline to the FIFO named by $SLUICE_TEST_FIFO, then blocks until the
// caller gives up, so that a test can kill the plugin while a check is
// pending; /hold writes "pending" to that FIFO too, then waits for a line
// on the FIFO named by $SLUICE_TEST_RELEASE and allows; /unavailable fails
// with a gRPC Unavailable error of the plugin's own (its backend is down);
// /log writes "crash: note via log" with the log package (to the process's
// standard error) and "crash: note via os.Stderr" to os.Stderr (which
// go-plugin redirects while serving), then allows; anything else is allowed with x-plugin-pid set to the plugin's process
// id.
package main

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"os"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluice-proxy/sluice/plugins/authapi"
)

func pending() {
	if f, err := os.OpenFile(os.Getenv("SLUICE_TEST_FIFO"), os.O_WRONLY, 0); err == nil {
		f.WriteString("pending\n")
		f.Close()
	}
}

func check(ctx context.Context, r *authapi.CheckRequest) (*authapi.CheckResponse, error) {
	switch r.GetHttp().GetPath() {
	case "/exit":
		os.Exit(3)
	case "/block":
		pending()
		<-ctx.Done()
		return nil, ctx.Err()
	case "/hold":
		pending()
		if f, err := os.Open(os.Getenv("SLUICE_TEST_RELEASE")); err == nil {
			bufio.NewReader(f).ReadString('\n')
			f.Close()
		}
	case "/log":
		log.Print("crash: note via log")
		fmt.Fprintln(os.Stderr, "crash: note via os.Stderr")
	case "/unavailable":
		return nil, status.Error(codes.Unavailable, "crash: backend unavailable")
	}
	return authapi.Allow("x-plugin-pid", strconv.Itoa(os.Getpid())), nil
}

func main() { authapi.Serve(authapi.AuthorizerFunc(check)) }
