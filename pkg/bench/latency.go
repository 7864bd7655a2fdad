package bench

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Latencies collects request latencies. The zero value is ready to use and
// it is safe for concurrent use. It keeps every sample (8 bytes each), so
// percentiles are exact rather than estimated from buckets.
type Latencies struct {
	mu      sync.Mutex
	samples []time.Duration // guarded by mu
}

// Record adds one sample.
func (l *Latencies) Record(d time.Duration) {
	l.mu.Lock()
	l.samples = append(l.samples, d)
	l.mu.Unlock()
}

// Summary returns the distribution of the samples recorded so far; all
// fields are zero when there are none. It does not reset l.
func (l *Latencies) Summary() Summary {
	l.mu.Lock()
	s := slices.Clone(l.samples)
	l.mu.Unlock()
	return Summarize(s)
}

// Summary describes a latency distribution in milliseconds. Percentiles use
// the nearest-rank method: P99 is the smallest sample that is at least as
// large as 99% of the samples.
type Summary struct {
	Count  int     `json:"count"`
	MinMs  float64 `json:"minMs"`
	MeanMs float64 `json:"meanMs"`
	P50Ms  float64 `json:"p50Ms"`
	P90Ms  float64 `json:"p90Ms"`
	P99Ms  float64 `json:"p99Ms"`
	MaxMs  float64 `json:"maxMs"`
}

// Summarize computes the Summary of samples, which it sorts in place.
func Summarize(samples []time.Duration) Summary {
	if len(samples) == 0 {
		return Summary{}
	}
	slices.Sort(samples)
	var total time.Duration
	for _, d := range samples {
		total += d
	}
	return Summary{
		Count:  len(samples),
		MinMs:  ms(samples[0]),
		MeanMs: ms(total / time.Duration(len(samples))),
		P50Ms:  ms(percentile(samples, 0.50)),
		P90Ms:  ms(percentile(samples, 0.90)),
		P99Ms:  ms(percentile(samples, 0.99)),
		MaxMs:  ms(samples[len(samples)-1]),
	}
}

// percentile returns the nearest-rank p-quantile (0 < p <= 1) of sorted,
// which must not be empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(rank, len(sorted)-1))]
}

// ms converts d to milliseconds, rounded to the microsecond.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}
