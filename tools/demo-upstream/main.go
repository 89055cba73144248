// Command demo-upstream is a small HTTP/1.1 server to put behind sluice when
// trying it out (make run). It answers:
//
//	/        a short text naming itself and echoing the method, path,
//	         x-forwarded-for and x-request-id it saw
//	/echo    the request body, with the request's Content-Type
//	/v2/...  a short text naming the v2 API and the path it saw
//
// With -tls-listen it also serves the same over TLS with HTTP/2 and HTTP/1.1
// (ALPN), using -cert and -key: the demo's upstream cluster reached over TLS
// and HTTP/2. It logs one line per request to stderr and stops on SIGINT or
// SIGTERM.
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
	tlsListen := flag.String("tls-listen", "", "address to serve TLS (HTTP/2 and HTTP/1.1) on, if any")
	certFile := flag.String("cert", "etc/certs/upstream.pem", "TLS certificate (PEM) for -tls-listen")
	keyFile := flag.String("key", "etc/certs/upstream-key.pem", "TLS key (PEM) for -tls-listen")
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
	var tlsSrv *http.Server
	if *tlsListen != "" {
		tlsSrv = &http.Server{Addr: *tlsListen, Handler: srv.Handler, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			log.Printf("version %s listening on %s (TLS, h2 and http/1.1)", version, *tlsListen)
			if err := tlsSrv.ListenAndServeTLS(*certFile, *keyFile); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Fatalf("%v", err)
			}
		}()
	}
	go func() {
		<-ctx.Done()
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutCtx)
		if tlsSrv != nil {
			tlsSrv.Shutdown(shutCtx)
		}
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
		fmt.Fprintf(w, "method: %s\npath: %s\nprotocol: %s\n", r.Method, r.URL.RequestURI(), r.Proto)
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
