//go:build nostats

package stats

import "time"

// The nostats build: recording does nothing (see record.go).

// Inc does nothing in the nostats build.
func (c *Counter) Inc() {}

// Add does nothing in the nostats build.
func (c *Counter) Add(uint64) {}

// Inc does nothing in the nostats build.
func (g *Gauge) Inc() {}

// Dec does nothing in the nostats build.
func (g *Gauge) Dec() {}

// Add does nothing in the nostats build.
func (g *Gauge) Add(int64) {}

// Sub does nothing in the nostats build.
func (g *Gauge) Sub(int64) {}

// Set does nothing in the nostats build.
func (g *Gauge) Set(int64) {}

// Record does nothing in the nostats build.
func (h *Histogram) Record(time.Duration) {}
