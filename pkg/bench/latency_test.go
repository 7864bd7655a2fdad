package bench

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSummarizeUsesNearestRankPercentiles(t *testing.T) {
	var l Latencies
	// Recorded out of order: Summary must sort.
	for i := 100; i >= 1; i-- {
		l.Record(time.Duration(i) * time.Millisecond)
	}
	want := Summary{Count: 100, MinMs: 1, MeanMs: 50.5, P50Ms: 50, P90Ms: 90, P99Ms: 99, MaxMs: 100}
	if diff := cmp.Diff(want, l.Summary()); diff != "" {
		t.Errorf("Summary() mismatch (-want +got):\n%s", diff)
	}
}

func TestSummarizeSmallSamples(t *testing.T) {
	tests := []struct {
		name    string
		samples []time.Duration
		want    Summary
	}{
		{name: "no samples is all zero", want: Summary{}},
		{name: "one sample is every percentile", samples: []time.Duration{1500 * time.Microsecond},
			want: Summary{Count: 1, MinMs: 1.5, MeanMs: 1.5, P50Ms: 1.5, P90Ms: 1.5, P99Ms: 1.5, MaxMs: 1.5}},
		{name: "p99 of two samples is the larger", samples: []time.Duration{time.Millisecond, 3 * time.Millisecond},
			want: Summary{Count: 2, MinMs: 1, MeanMs: 2, P50Ms: 1, P90Ms: 3, P99Ms: 3, MaxMs: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Summarize(tt.samples)); diff != "" {
				t.Errorf("Summarize() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
