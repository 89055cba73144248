// Command h3load is an HTTP/3 load generator on quic-go: -c connections,
// each with -m concurrent request streams, sending GET requests to -url for
// -d, after a -warmup on the same connections. It prints requests/s,
// errors and latency percentiles, and a BENCH_H3 line for scripts.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go/http3"
)

func main() {
	url := flag.String("url", "", "URL to GET (https://host:port/path)")
	conns := flag.Int("c", 20, "QUIC connections")
	streams := flag.Int("m", 10, "concurrent request streams per connection")
	dur := flag.Duration("d", 10*time.Second, "measured duration")
	warmup := flag.Duration("warmup", 2*time.Second, "warm-up duration before measuring")
	insecure := flag.Bool("k", true, "do not verify the server's certificate")
	flag.Parse()
	if *url == "" || *conns < 1 || *streams < 1 || *dur <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*url, *conns, *streams, *dur, *warmup, *insecure); err != nil {
		fmt.Fprintln(os.Stderr, "h3load:", err)
		os.Exit(1)
	}
}

// worker is one request stream's loop; its results are read after it ends.
type worker struct {
	lat    []time.Duration
	errors int
	last   error
}

func run(url string, conns, streams int, dur, warmup time.Duration, insecure bool) error {
	clients := make([]*http.Client, conns)
	for i := range clients {
		// One transport per connection: quic-go's transport keeps one QUIC
		// connection per host.
		tr := &http3.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: insecure}}
		defer tr.Close()
		clients[i] = &http.Client{Transport: tr}
	}
	var measuring atomic.Bool
	ctx, cancel := context.WithTimeout(context.Background(), warmup+dur)
	defer cancel()
	time.AfterFunc(warmup, func() { measuring.Store(true) })
	workers := make([]*worker, conns*streams)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{lat: make([]time.Duration, 0, 1<<14)}
		workers[i] = w
		c := clients[i%conns]
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				err := get(ctx, c, url)
				if ctx.Err() != nil {
					return // cut off by the end of the run: not counted
				}
				if !measuring.Load() {
					continue
				}
				if err != nil {
					w.errors++
					w.last = err
					continue
				}
				w.lat = append(w.lat, time.Since(t0))
			}
		})
	}
	wg.Wait()
	var lat []time.Duration
	errs := 0
	var last error
	for _, w := range workers {
		lat = append(lat, w.lat...)
		errs += w.errors
		if w.last != nil {
			last = w.last
		}
	}
	if len(lat) == 0 {
		return fmt.Errorf("no request succeeded (%d errors, last: %v)", errs, last)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	rps := float64(len(lat)) / dur.Seconds()
	fmt.Printf("h3load: %d connections x %d streams, %s: %d requests, %.0f req/s, %d errors\n", conns, streams, dur, len(lat), rps, errs)
	fmt.Printf("latency ms: mean %.3f p50 %.3f p90 %.3f p99 %.3f max %.3f\n",
		float64(sum.Microseconds())/1000/float64(len(lat)), pct(0.5), pct(0.9), pct(0.99), float64(lat[len(lat)-1].Microseconds())/1000)
	if last != nil {
		fmt.Printf("last error: %v\n", last)
	}
	fmt.Printf("BENCH_H3 requests=%d rps=%.0f errors=%d p50_ms=%.3f p99_ms=%.3f\n", len(lat), rps, errs, pct(0.5), pct(0.99))
	return nil
}

// get sends one GET and reads the body; a status other than 200 is an error.
func get(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = errors.New(resp.Status)
	}
	return err
}
