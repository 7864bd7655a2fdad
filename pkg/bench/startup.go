package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// stopGrace is how long a benchmark server may take to exit after SIGTERM.
const stopGrace = 30 * time.Second

// startupOptions are the flags of `skiff bench startup`.
type startupOptions struct {
	bin        string
	runs       int
	poll       time.Duration
	timeout    time.Duration
	memory     bool
	idleWait   time.Duration
	objects    int
	loadedWait time.Duration
	workers    int
	workDir    string
	keep       bool
}

func (o *startupOptions) validate() error {
	var errs []error
	if o.bin == "" {
		errs = append(errs, errors.New("--skiff-bin is required"))
	}
	if o.runs < 1 {
		errs = append(errs, errors.New("--runs must be at least 1"))
	}
	if o.poll <= 0 || o.timeout <= 0 {
		errs = append(errs, errors.New("--poll and --timeout must be positive"))
	}
	if o.memory && (o.objects < 0 || o.workers < 1 || o.idleWait < 0 || o.loadedWait < 0) {
		errs = append(errs, errors.New("--objects, --idle-wait and --loaded-wait must not be negative, --workers at least 1"))
	}
	return errors.Join(errs...)
}

func newStartupCommand(g *globalOptions) *cobra.Command {
	o := &startupOptions{}
	cmd := &cobra.Command{
		Use:   "startup --skiff-bin PATH",
		Short: "Measure skiff server start time and memory",
		Long: `Starts "skiff server --disable-agent" from --skiff-bin on a fresh data
directory and a free port, and measures the time from process start to the
first 200 answer of GET /readyz, polled every --poll over HTTPS trusting the
CA of the admin kubeconfig the server writes. Each run does a cold start
(new data directory: certificates and etcd created) and then a warm one
(restart on the same directory). The table shows min/median/max.

Then, unless --memory=false, it starts one more server and reads its
resident memory (VmRSS in /proc/<pid>/status): --idle-wait after readiness,
and --loaded-wait after storing --objects ConfigMaps of ~200 bytes.

The servers run under a temporary directory in --work-dir, removed at the
end unless --keep; their logs are there too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return fmt.Errorf("invalid flags: %w", err)
			}
			return run(cmd, g, func(ctx context.Context, progress io.Writer) (report, error) {
				return runStartup(ctx, o, progress)
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.bin, "skiff-bin", "", "The skiff binary to start (required).")
	fs.IntVar(&o.runs, "runs", 5, "Cold+warm start pairs to measure.")
	fs.DurationVar(&o.poll, "poll", 5*time.Millisecond, "Interval of the /readyz polls.")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "Longest wait for one server to become ready.")
	fs.BoolVar(&o.memory, "memory", true, "Also measure the server's resident memory, idle and loaded.")
	fs.DurationVar(&o.idleWait, "idle-wait", 5*time.Second, "Wait after readiness before reading the idle memory.")
	fs.IntVar(&o.objects, "objects", 10000, "ConfigMaps stored before reading the loaded memory.")
	fs.DurationVar(&o.loadedWait, "loaded-wait", 10*time.Second, "Wait after storing the objects before reading the loaded memory.")
	fs.IntVar(&o.workers, "workers", 16, "Concurrent creates while storing the objects.")
	fs.StringVar(&o.workDir, "work-dir", os.TempDir(), "Where to create the temporary data directories.")
	fs.BoolVar(&o.keep, "keep", false, "Keep the data directories and server logs.")
	return cmd
}

// startupReport is the result of `skiff bench startup`.
type startupReport struct {
	Binary string      `json:"binary"`
	Runs   int         `json:"runs"`
	Cold   startupStat `json:"cold"`
	Warm   startupStat `json:"warm"`
	Memory *memoryStat `json:"memory,omitempty"`
}

// startupStat summarizes the times to ready of one kind of start.
type startupStat struct {
	SamplesMs []float64 `json:"samplesMs"`
	MinMs     float64   `json:"minMs"`
	MedianMs  float64   `json:"medianMs"`
	MaxMs     float64   `json:"maxMs"`
}

// memoryStat is the server's resident memory idle and loaded.
type memoryStat struct {
	IdleWaitSeconds   float64 `json:"idleWaitSeconds"`
	IdleRSSKiB        int64   `json:"idleRSSKiB"`
	Objects           int     `json:"objects"`
	ObjectSizeBytes   int     `json:"objectSizeBytes"`
	StoreSeconds      float64 `json:"storeSeconds"`
	LoadedWaitSeconds float64 `json:"loadedWaitSeconds"`
	LoadedRSSKiB      int64   `json:"loadedRSSKiB"`
	// PeakRSSKiB is VmHWM when the loaded memory was read.
	PeakRSSKiB int64 `json:"peakRSSKiB"`
}

func newStartupStat(samples []time.Duration) startupStat {
	s := startupStat{}
	for _, d := range samples {
		s.SamplesMs = append(s.SamplesMs, ms(d))
	}
	if len(samples) == 0 {
		return s
	}
	sorted := slices.Sorted(slices.Values(samples))
	s.MinMs, s.MaxMs = ms(sorted[0]), ms(sorted[len(sorted)-1])
	mid := len(sorted) / 2
	s.MedianMs = ms(sorted[mid])
	if len(sorted)%2 == 0 {
		s.MedianMs = ms((sorted[mid-1] + sorted[mid]) / 2)
	}
	return s
}

func (r *startupReport) writeTable(w io.Writer) error {
	fmt.Fprintf(w, "Startup of %s server --disable-agent, process start to /readyz 200, %d runs\n\n", r.Binary, r.Runs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "START\tMIN ms\tMEDIAN ms\tMAX ms\t")
	for _, s := range []struct {
		name string
		stat startupStat
	}{{"cold (new data dir)", r.Cold}, {"warm (restart)", r.Warm}} {
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t\n", s.name, s.stat.MinMs, s.stat.MedianMs, s.stat.MaxMs)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	if m := r.Memory; m != nil {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "MEMORY\tRSS MiB\t")
		fmt.Fprintf(tw, "idle, %s after ready\t%.1f\t\n", secs(m.IdleWaitSeconds), mib(m.IdleRSSKiB))
		fmt.Fprintf(tw, "%d ConfigMaps of %d B, %s after storing\t%.1f\t\n", m.Objects, m.ObjectSizeBytes, secs(m.LoadedWaitSeconds), mib(m.LoadedRSSKiB))
		fmt.Fprintf(tw, "peak (VmHWM)\t%.1f\t\n", mib(m.PeakRSSKiB))
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("write table: %w", err)
		}
	}
	if m := r.Memory; m != nil && m.Objects > 0 {
		fmt.Fprintf(w, "stored %d objects in %.1fs (%.0f/s)\n", m.Objects, m.StoreSeconds, float64(m.Objects)/m.StoreSeconds)
	}
	return nil
}

func mib(kib int64) float64 { return float64(kib) / 1024 }
func secs(s float64) string { return time.Duration(s * float64(time.Second)).String() }

// runStartup runs the startup benchmark described by o. It stops every
// server it started, also when ctx is cancelled.
func runStartup(ctx context.Context, o *startupOptions, progress io.Writer) (_ *startupReport, err error) {
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return nil, fmt.Errorf("--skiff-bin: %w", err)
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("--skiff-bin: %w", err)
	}
	root, err := os.MkdirTemp(o.workDir, "skiff-bench-startup-")
	if err != nil {
		return nil, fmt.Errorf("create work dir: %w", err)
	}
	if o.keep {
		fmt.Fprintf(progress, "startup: data directories and logs kept in %s\n", root)
	} else {
		defer func() {
			if rerr := os.RemoveAll(root); rerr != nil && err == nil {
				err = fmt.Errorf("remove work dir: %w", rerr)
			}
		}()
	}
	rep := &startupReport{Binary: bin, Runs: o.runs}
	var cold, warm []time.Duration
	for i := range o.runs {
		dir := filepath.Join(root, fmt.Sprintf("run-%d", i+1))
		c, err := timeStart(ctx, bin, dir, o)
		if err != nil {
			return nil, fmt.Errorf("run %d, cold start: %w", i+1, err)
		}
		w, err := timeStart(ctx, bin, dir, o)
		if err != nil {
			return nil, fmt.Errorf("run %d, warm start: %w", i+1, err)
		}
		fmt.Fprintf(progress, "startup: run %d/%d: cold %s, warm %s\n", i+1, o.runs, c.Round(time.Millisecond), w.Round(time.Millisecond))
		cold, warm = append(cold, c), append(warm, w)
	}
	rep.Cold, rep.Warm = newStartupStat(cold), newStartupStat(warm)
	if o.memory {
		m, err := measureMemory(ctx, bin, filepath.Join(root, "memory"), o, progress)
		if err != nil {
			return nil, err
		}
		rep.Memory = m
	}
	return rep, nil
}

// timeStart starts a server on dir and a free port, waits until it is
// ready, stops it and returns the time to ready.
func timeStart(ctx context.Context, bin, dir string, o *startupOptions) (_ time.Duration, err error) {
	port, err := freePort()
	if err != nil {
		return 0, err
	}
	p, err := startServer(bin, dir, port)
	if err != nil {
		return 0, err
	}
	defer func() {
		if serr := p.stop(stopGrace); serr != nil && err == nil {
			err = serr
		}
	}()
	return p.waitReady(ctx, o.poll, o.timeout)
}

// measureMemory starts a server on dir and reads its RSS idle and after
// storing o.objects ConfigMaps.
func measureMemory(ctx context.Context, bin, dir string, o *startupOptions, progress io.Writer) (_ *memoryStat, err error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p, err := startServer(bin, dir, port)
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := p.stop(stopGrace); serr != nil && err == nil {
			err = serr
		}
	}()
	if _, err := p.waitReady(ctx, o.poll, o.timeout); err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	m := &memoryStat{IdleWaitSeconds: o.idleWait.Seconds(), Objects: o.objects, LoadedWaitSeconds: o.loadedWait.Seconds()}
	fmt.Fprintf(progress, "startup: memory: waiting %s at idle\n", o.idleWait)
	if err := sleep(ctx, o.idleWait); err != nil {
		return nil, err
	}
	if m.IdleRSSKiB, err = p.statusKiB("VmRSS"); err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}

	cfg, err := p.restConfig()
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = -1, 0 // no client-side rate limit
	client, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	const ns = "skiff-bench-memory"
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("memory: create namespace: %w", err)
	}
	m.ObjectSizeBytes = objectSize(newConfigMap(ns, "cm-0", 0))
	fmt.Fprintf(progress, "startup: memory: storing %d ConfigMaps\n", o.objects)
	t0 := time.Now()
	err = parallel(ctx, o.objects, o.workers, func(ctx context.Context, i int) error {
		_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, newConfigMap(ns, fmt.Sprintf("cm-%d", i), i), metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("memory: store ConfigMaps: %w", err)
	}
	m.StoreSeconds = time.Since(t0).Seconds()
	fmt.Fprintf(progress, "startup: memory: waiting %s loaded\n", o.loadedWait)
	if err := sleep(ctx, o.loadedWait); err != nil {
		return nil, err
	}
	if m.LoadedRSSKiB, err = p.statusKiB("VmRSS"); err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	if m.PeakRSSKiB, err = p.statusKiB("VmHWM"); err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	return m, nil
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("interrupted: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}
