// Command demo-upstream is a small HTTP/1.1 server to put behind sluice when
// trying it out (make run). It answers:
//
//	/        a short text naming itself and echoing the method, path,
//	         x-forwarded-for and x-request-id it saw
//	/echo    the request body, with the request's Content-Type
//	/v2/...  a short text naming the v2 API and the path it saw
//
// It logs one line per request to stderr and stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to listen on (host:port)")
	flag.Parse()
	log.SetPrefix("demo-upstream: ")
	log.SetOutput(os.Stderr)

	srv := &http.Server{
		Addr:              *listen,
		Handler:           logRequests(routes()),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutCtx)
	}()
	log.Printf("version %s listening on %s", version, *listen)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("%v", err)
	}
}

func routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "hello from demo-upstream %s\n", version)
		fmt.Fprintf(w, "method: %s\npath: %s\n", r.Method, r.URL.RequestURI())
		fmt.Fprintf(w, "x-forwarded-for: %s\n", r.Header.Get("X-Forwarded-For"))
		fmt.Fprintf(w, "x-request-id: %s\n", r.Header.Get("X-Request-Id"))
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		if _, err := io.Copy(w, r.Body); err != nil {
			log.Printf("echo: %v", err)
		}
	})
	mux.HandleFunc("/v2/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "demo-upstream v2 api: %s %s\n", r.Method, strings.TrimPrefix(r.URL.Path, "/v2"))
	})
	return mux
}

func logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.Printf("%s %s %s from %s xff=%q request-id=%q", r.Method, r.URL.RequestURI(), r.Proto,
			r.RemoteAddr, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Request-Id"))
		h.ServeHTTP(w, r)
	})
}
