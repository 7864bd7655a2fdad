package bench

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNewStartupStat(t *testing.T) {
	tests := []struct {
		name    string
		samples []time.Duration
		want    startupStat
	}{
		{name: "odd count: middle sample", samples: []time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond},
			want: startupStat{SamplesMs: []float64{3, 1, 2}, MinMs: 1, MedianMs: 2, MaxMs: 3}},
		{name: "even count: mean of the middle two", samples: []time.Duration{4 * time.Millisecond, time.Millisecond, 2 * time.Millisecond, 9 * time.Millisecond},
			want: startupStat{SamplesMs: []float64{4, 1, 2, 9}, MinMs: 1, MedianMs: 3, MaxMs: 9}},
		{name: "none", want: startupStat{}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, newStartupStat(tt.samples)); diff != "" {
			t.Errorf("%s: mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestProcStatusKiB(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status")
	status := "Name:\tskiff\nVmPeak:\t 2000000 kB\nVmHWM:\t  150000 kB\nVmRSS:\t  123456 kB\nThreads:\t12\n"
	if err := os.WriteFile(path, []byte(status), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := procStatusKiB(path, "VmRSS"); err != nil || got != 123456 {
		t.Errorf("VmRSS = %d, %v; want 123456", got, err)
	}
	if _, err := procStatusKiB(path, "VmSwap"); err == nil {
		t.Error("missing field: no error")
	}
	// The real file of this process parses.
	if got, err := procStatusKiB("/proc/self/status", "VmRSS"); err != nil || got <= 0 {
		t.Errorf("/proc/self/status VmRSS = %d, %v", got, err)
	}
}

func TestStartupReportTable(t *testing.T) {
	rep := &startupReport{Binary: "/bin/skiff", Runs: 2,
		Cold:   newStartupStat([]time.Duration{200 * time.Millisecond, 300 * time.Millisecond}),
		Warm:   newStartupStat([]time.Duration{100 * time.Millisecond, 150 * time.Millisecond}),
		Memory: &memoryStat{IdleWaitSeconds: 5, IdleRSSKiB: 102400, Objects: 10, ObjectSizeBytes: 200, StoreSeconds: 1, LoadedWaitSeconds: 10, LoadedRSSKiB: 204800, PeakRSSKiB: 307200}}
	var b bytes.Buffer
	if err := writeReport(&b, "table", rep); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"250.0", "125.0", "100.0", "200.0", "300.0", "10 ConfigMaps of 200 B, 10s after storing"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, b.String())
		}
	}
}

// TestRunStartup starts real servers; it needs a built binary:
// SKIFF_BIN=/path/to/skiff go test -run TestRunStartup ./pkg/bench/
func TestRunStartup(t *testing.T) {
	bin := os.Getenv("SKIFF_BIN")
	if bin == "" {
		t.Skip("SKIFF_BIN not set")
	}
	o := &startupOptions{bin: bin, runs: 1, poll: 5 * time.Millisecond, timeout: time.Minute,
		memory: true, objects: 50, workers: 4, workDir: t.TempDir()}
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	rep, err := runStartup(context.Background(), o, io.Discard)
	if err != nil {
		t.Fatalf("runStartup: %v", err)
	}
	if rep.Cold.MinMs <= 0 || rep.Warm.MinMs <= 0 || rep.Memory == nil || rep.Memory.IdleRSSKiB <= 0 || rep.Memory.LoadedRSSKiB <= 0 {
		t.Errorf("report incomplete: %+v %+v", rep, rep.Memory)
	}
	if left, _ := filepath.Glob(filepath.Join(o.workDir, "*")); len(left) != 0 {
		t.Errorf("work dir not cleaned up: %v", left)
	}
}
