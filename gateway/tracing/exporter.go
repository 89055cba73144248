package tracing

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/gateway/stats"
)

// exporter batches a worker's finished spans and sends them to one
// collector with OTLP/HTTP JSON, on a goroutine of its own: the data plane
// only appends to a bounded queue under a mutex, never waits for the
// network. One exporter serves every manager of the worker process with the
// same provider settings, across config generations (see exporterFor).
type exporter struct {
	endpoint string
	service  string
	client   *http.Client
	interval time.Duration
	minFlush int
	maxQueue int

	stats atomic.Pointer[counters]
	log   atomic.Pointer[zap.Logger]

	// sending is held while a batch is sent (by run or flush), so that
	// a flush waits for a send under way.
	sending sync.Mutex

	mu      sync.Mutex
	queue   []*spanData
	started bool
	kick    chan struct{} // buffered 1: the queue reached minFlush
}

// counters are the exporter's stat handles in the current generation's
// slab.
type counters struct {
	sent, dropped, reportsSent, reportsFailed *stats.Counter
}

func newCounters(slab *stats.Slab) *counters {
	return &counters{sent: slab.Counter(StatSpansSent), dropped: slab.Counter(StatSpansDropped),
		reportsSent: slab.Counter(StatHTTPReportsSent), reportsFailed: slab.Counter(StatHTTPReportsFailed)}
}

// exporters are the worker process's exporters by provider settings.
var (
	exportersMu sync.Mutex
	exporters   = map[string]*exporter{}
)

// exporterFor returns the process's exporter for p, creating it, and points
// its stats at slab and its logs at log.
func exporterFor(p *Provider, slab *stats.Slab, log *zap.Logger) *exporter {
	key := fmt.Sprintf("%s\x00%s\x00%v\x00%v\x00%d\x00%d", p.CollectorEndpoint, p.ServiceName, p.Timeout.Duration,
		p.FlushInterval.Duration, p.MinFlushSpans, p.MaxQueuedSpans)
	exportersMu.Lock()
	defer exportersMu.Unlock()
	e := exporters[key]
	if e == nil {
		e = &exporter{
			endpoint: p.CollectorEndpoint,
			service:  p.ServiceName,
			client:   &http.Client{Timeout: p.Timeout.Duration, Transport: collectorTransport()},
			interval: p.FlushInterval.Duration,
			minFlush: p.MinFlushSpans,
			maxQueue: p.MaxQueuedSpans,
			kick:     make(chan struct{}, 1),
		}
		exporters[key] = e
	}
	e.stats.Store(newCounters(slab))
	if log == nil {
		log = zap.NewNop()
	}
	e.log.Store(log)
	return e
}

// collectorTransport is the exporter's HTTP transport: the default one
// without the environment's proxy settings (the collector is configured
// by its URL, as in Envoy), keeping a connection to it alive.
func collectorTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.MaxIdleConnsPerHost = 2
	return tr
}

// enqueue queues a finished span, or drops and counts it when the queue is
// full. It never blocks on the network.
func (e *exporter) enqueue(s *spanData) {
	e.mu.Lock()
	if len(e.queue) >= e.maxQueue {
		e.mu.Unlock()
		e.stats.Load().dropped.Inc()
		return
	}
	e.queue = append(e.queue, s)
	n := len(e.queue)
	if !e.started {
		e.started = true
		go e.run()
	}
	e.mu.Unlock()
	if n >= e.minFlush {
		select {
		case e.kick <- struct{}{}:
		default:
		}
	}
}

// Flush sends what every exporter of the process has queued and waits for
// the sends until ctx is done. A worker calls it once its drain is over,
// before it exits, so that the spans of its last requests (up to a
// flush_interval of them) are not lost with the process.
func Flush(ctx context.Context) {
	exportersMu.Lock()
	es := make([]*exporter, 0, len(exporters))
	for _, e := range exporters {
		es = append(es, e)
	}
	exportersMu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for _, e := range es {
			wg.Go(e.flush)
		}
		wg.Wait()
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// flush sends the queue now, after the send under way, if any, ended.
func (e *exporter) flush() {
	e.sending.Lock()
	defer e.sending.Unlock()
	e.mu.Lock()
	batch := e.queue
	e.queue = nil
	e.mu.Unlock()
	if len(batch) > 0 {
		e.send(nil, batch)
	}
}

// run sends the queue every interval, or as soon as it holds minFlush
// spans.
func (e *exporter) run() {
	t := time.NewTicker(e.interval)
	defer t.Stop()
	var body []byte
	for {
		select {
		case <-t.C:
		case <-e.kick:
		}
		e.sending.Lock()
		e.mu.Lock()
		batch := e.queue
		e.queue = nil
		e.mu.Unlock()
		if len(batch) > 0 {
			body = e.send(body[:0], batch)
		}
		e.sending.Unlock()
	}
}

// send posts one export request with batch and counts the outcome.
func (e *exporter) send(body []byte, batch []*spanData) []byte {
	body = appendExportRequest(body, e.service, batch)
	st := e.stats.Load()
	err := e.post(body)
	if err != nil {
		st.reportsFailed.Inc()
		st.dropped.Add(uint64(len(batch)))
		e.log.Load().Debug("tracing: export failed", zap.String("endpoint", e.endpoint), zap.Int("spans", len(batch)), zap.Error(err))
		return body
	}
	st.reportsSent.Inc()
	st.sent.Add(uint64(len(batch)))
	return body
}

func (e *exporter) post(body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), e.client.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("tracing: collector answered %s", resp.Status)
	}
	return nil
}
