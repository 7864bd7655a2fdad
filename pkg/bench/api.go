package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The operations `skiff bench api` measures, in the order it runs them.
const (
	opCreate = "create"
	opGet    = "get"
	opUpdate = "update"
	opList1  = "list-1"
	opListN  = "list-n"
	opWatch  = "watch"
)

// apiOps returns every operation of `skiff bench api`, in the order it runs
// them.
func apiOps() []string {
	return []string{opCreate, opGet, opUpdate, opList1, opListN, opWatch}
}

// The load modes of a request phase.
const (
	modeFixed = "fixed"
	modeMax   = "max"
)

// apiOptions are the flags of `skiff bench api`.
type apiOptions struct {
	client      clientOptions
	duration    time.Duration
	rate        float64
	concurrency int
	modes       []string
	ops         []string
	listSize    int
	poolSize    int
	listRV      string
	watchers    int
	watchRate   float64
}

func (o *apiOptions) validate() error {
	var errs []error
	if o.duration <= 0 {
		errs = append(errs, fmt.Errorf("--duration must be positive"))
	}
	if o.concurrency < 1 {
		errs = append(errs, fmt.Errorf("--concurrency must be at least 1"))
	}
	for _, m := range o.modes {
		if m != modeFixed && m != modeMax {
			errs = append(errs, fmt.Errorf("--modes: unknown mode %q (want %s or %s)", m, modeFixed, modeMax))
		}
	}
	if slices.Contains(o.modes, modeFixed) && o.rate <= 0 {
		errs = append(errs, fmt.Errorf("--rate must be positive"))
	}
	for _, op := range o.ops {
		if !slices.Contains(apiOps(), op) {
			errs = append(errs, fmt.Errorf("--ops: unknown operation %q (want some of %s)", op, strings.Join(apiOps(), ",")))
		}
	}
	if o.listSize < 1 || o.poolSize < 1 {
		errs = append(errs, fmt.Errorf("--list-size and --pool-size must be at least 1"))
	}
	if slices.Contains(o.ops, opWatch) && (o.watchers < 1 || o.watchRate <= 0) {
		errs = append(errs, fmt.Errorf("--watchers must be at least 1 and --watch-rate positive"))
	}
	return errors.Join(errs...)
}

func newAPICommand(g *globalOptions) *cobra.Command {
	o := &apiOptions{}
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Measure API request latency, throughput and watch delivery",
		Long: `Measures the API server through the real HTTP stack with client-go, on
ConfigMaps of about 200 bytes in temporary namespaces (skiff-bench-*) that it
creates and deletes.

For each operation (create, get, update, list of 1 object, list of
--list-size objects) it runs two phases of --duration each:
  fixed  open loop at --rate requests/s, at most --concurrency in flight.
         Latency counts from when each request was due, so a server that
         falls behind shows queueing instead of silently slowing the load.
  max    --concurrency workers sending back to back: peak throughput.
Then --watchers watches on one namespace receive ConfigMaps created at
--watch-rate for --duration; each carries its send time in an annotation,
and the delivery latency is send to receipt, over every watcher.

Get and update spread over --pool-size objects; updates are unconditional
(no resourceVersion), so concurrent ones never conflict.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return fmt.Errorf("invalid flags: %w", err)
			}
			cfg, err := o.client.restConfig()
			if err != nil {
				return err
			}
			return run(cmd, g, func(ctx context.Context, progress io.Writer) (report, error) {
				return runAPI(ctx, cfg, o, progress)
			})
		},
	}
	fs := cmd.Flags()
	o.client.addFlags(fs)
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "Length of each measured phase (there are up to 11).")
	fs.Float64Var(&o.rate, "rate", 200, "Request rate of the fixed-rate phases, requests/s.")
	fs.IntVar(&o.concurrency, "concurrency", 16, "Workers of the max phases; the most requests in flight in the fixed-rate phases.")
	fs.StringSliceVar(&o.modes, "modes", []string{modeFixed, modeMax}, "Load modes to run for each operation: fixed, max.")
	fs.StringSliceVar(&o.ops, "ops", apiOps(), "Operations to measure: "+strings.Join(apiOps(), ", ")+".")
	fs.IntVar(&o.listSize, "list-size", 100, "Objects in the namespace that list-n lists.")
	fs.IntVar(&o.poolSize, "pool-size", 100, "Objects that get and update spread over.")
	fs.StringVar(&o.listRV, "list-resource-version", "", `resourceVersion of the lists: "" reads the latest state (as kubectl does), "0" allows the watch cache.`)
	fs.IntVar(&o.watchers, "watchers", 10, "Concurrent watches in the watch fan-out phase.")
	fs.Float64Var(&o.watchRate, "watch-rate", 50, "Objects created per second in the watch fan-out phase.")
	return cmd
}

// apiReport is the result of `skiff bench api`.
type apiReport struct {
	Server          string     `json:"server"`
	PhaseSeconds    float64    `json:"phaseSeconds"`
	ListSize        int        `json:"listSize"`
	ListRV          string     `json:"listResourceVersion"`
	Phases          []apiPhase `json:"phases"`
	Watch           *watchStat `json:"watch,omitempty"`
	ObjectSizeBytes int        `json:"objectSizeBytes"`
}

// apiPhase is one operation measured in one mode.
type apiPhase struct {
	Op          string  `json:"op"`
	Mode        string  `json:"mode"`
	TargetRate  float64 `json:"targetRatePerSec,omitempty"`
	Concurrency int     `json:"concurrency"`
	loadResult
}

// watchStat is the result of the watch fan-out phase.
type watchStat struct {
	Watchers int     `json:"watchers"`
	Rate     float64 `json:"eventRatePerSec"`
	// Events counts the objects created; Expected is Events × Watchers.
	Events    int `json:"events"`
	Expected  int `json:"expectedDeliveries"`
	Delivered int `json:"deliveries"`
	// Write is the latency of the creates that caused the events.
	Write loadResult `json:"write"`
	// Delivery is send (just before the create) to receipt by a watcher.
	Delivery Summary `json:"delivery"`
	// WatchErrors counts watches that failed or ended early.
	WatchErrors     int    `json:"watchErrors"`
	FirstWatchError string `json:"firstWatchError,omitempty"`
}

func (r *apiReport) writeTable(w io.Writer) error {
	fmt.Fprintf(w, "API benchmark against %s: %s per phase, ConfigMaps of ~%d bytes, list-n lists %d\n\n",
		r.Server, time.Duration(r.PhaseSeconds*float64(time.Second)), r.ObjectSizeBytes, r.ListSize)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	var notes []string
	if len(r.Phases) > 0 {
		fmt.Fprintln(tw, "OP\tMODE\tCONC\tTARGET/s\tREQUESTS\tERRORS\tACHIEVED/s\tP50 ms\tP90 ms\tP99 ms\tMAX ms\t")
		for _, p := range r.Phases {
			target := "-"
			if p.Mode == modeFixed {
				target = fmt.Sprintf("%.0f", p.TargetRate)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t\n",
				p.Op, p.Mode, p.Concurrency, target, p.Requests, p.Errors, p.Throughput,
				p.Latency.P50Ms, p.Latency.P90Ms, p.Latency.P99Ms, p.Latency.MaxMs)
			if p.FirstError != "" {
				notes = append(notes, fmt.Sprintf("%s %s: first error: %s", p.Op, p.Mode, p.FirstError))
			}
		}
		fmt.Fprintln(tw)
	}
	if s := r.Watch; s != nil {
		fmt.Fprintln(tw, "WATCH\tWATCHERS\tEVENTS/s\tEVENTS\tDELIVERED\tEXPECTED\tP50 ms\tP90 ms\tP99 ms\tMAX ms\t")
		fmt.Fprintf(tw, "fan-out\t%d\t%.0f\t%d\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t\n",
			s.Watchers, s.Rate, s.Events, s.Delivered, s.Expected,
			s.Delivery.P50Ms, s.Delivery.P90Ms, s.Delivery.P99Ms, s.Delivery.MaxMs)
		fmt.Fprintf(tw, "(writes)\t\t\t\t\t\t%.2f\t%.2f\t%.2f\t%.2f\t\n",
			s.Write.Latency.P50Ms, s.Write.Latency.P90Ms, s.Write.Latency.P99Ms, s.Write.Latency.MaxMs)
		if s.Write.FirstError != "" {
			notes = append(notes, fmt.Sprintf("watch writes: %d errors, first: %s", s.Write.Errors, s.Write.FirstError))
		}
		if s.FirstWatchError != "" {
			notes = append(notes, fmt.Sprintf("watches: %d errors, first: %s", s.WatchErrors, s.FirstWatchError))
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
	return nil
}

// runAPI runs the API benchmark described by o against the cluster of cfg,
// logging progress to progress. It deletes the namespaces it created even
// when ctx is cancelled.
func runAPI(ctx context.Context, cfg *rest.Config, o *apiOptions, progress io.Writer) (_ *apiReport, err error) {
	client, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	f, err := newAPIFixture(ctx, client, o, progress)
	defer func() {
		if cerr := f.cleanup(progress); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err != nil {
		return nil, err
	}
	rep := &apiReport{
		Server:          cfg.Host,
		PhaseSeconds:    o.duration.Seconds(),
		ListSize:        o.listSize,
		ListRV:          o.listRV,
		ObjectSizeBytes: objectSize(newConfigMap(f.crud, "pool-0", 0)),
	}
	for _, op := range apiOps() {
		if !slices.Contains(o.ops, op) || op == opWatch {
			continue
		}
		for _, mode := range []string{modeFixed, modeMax} {
			if !slices.Contains(o.modes, mode) {
				continue
			}
			do := f.request(op, mode, o)
			p := apiPhase{Op: op, Mode: mode, Concurrency: o.concurrency}
			if mode == modeFixed {
				fmt.Fprintf(progress, "api: %s at %.0f/s for %s\n", op, o.rate, o.duration)
				p.TargetRate = o.rate
				p.loadResult = openLoop(ctx, o.rate, o.concurrency, o.duration, do)
			} else {
				fmt.Fprintf(progress, "api: %s with %d workers for %s\n", op, o.concurrency, o.duration)
				p.loadResult = closedLoop(ctx, o.concurrency, o.duration, do)
			}
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("interrupted during %s %s: %w", op, mode, err)
			}
			rep.Phases = append(rep.Phases, p)
		}
	}
	if slices.Contains(o.ops, opWatch) {
		fmt.Fprintf(progress, "api: watch fan-out to %d watchers, %.0f events/s for %s\n", o.watchers, o.watchRate, o.duration)
		s, err := watchFanout(ctx, client, f.watch, o.watchers, o.watchRate, o.concurrency, o.duration, o.client.timeout)
		if err != nil {
			return nil, err
		}
		rep.Watch = s
	}
	return rep, nil
}

// apiFixture holds the namespaces and objects the API benchmark works on.
type apiFixture struct {
	client  kubernetes.Interface
	timeout time.Duration // per request
	// created lists the namespaces to delete, in creation order.
	created []string
	// crud holds the pool objects (get, update) and the created ones; list1
	// holds one object, listN holds o.listSize, watch starts empty.
	crud, list1, listN, watch string
	pool                      []string
}

// newAPIFixture creates the namespaces and seeds them. On error the
// returned fixture still records what to clean up.
func newAPIFixture(ctx context.Context, client kubernetes.Interface, o *apiOptions, progress io.Writer) (*apiFixture, error) {
	f := &apiFixture{client: client, timeout: o.client.timeout}
	base, err := f.createNamespace(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "skiff-bench-"}})
	if err != nil {
		return f, err
	}
	f.crud = base
	for _, ns := range []struct {
		name   *string
		suffix string
	}{{&f.list1, "-list1"}, {&f.listN, "-listn"}, {&f.watch, "-watch"}} {
		if *ns.name, err = f.createNamespace(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: base + ns.suffix}}); err != nil {
			return f, err
		}
	}
	fmt.Fprintf(progress, "api: seeding %s: %d objects for get/update, 1 and %d to list\n", base, o.poolSize, o.listSize)
	for i := range o.poolSize {
		f.pool = append(f.pool, fmt.Sprintf("pool-%d", i))
	}
	seed := func(ns, prefix string, n int) error {
		return parallel(ctx, n, 16, func(ctx context.Context, i int) error {
			return f.create(ctx, newConfigMap(ns, fmt.Sprintf("%s-%d", prefix, i), i))
		})
	}
	if err := seed(f.crud, "pool", o.poolSize); err != nil {
		return f, fmt.Errorf("seed get/update pool: %w", err)
	}
	if err := seed(f.list1, "item", 1); err != nil {
		return f, fmt.Errorf("seed list-1 namespace: %w", err)
	}
	if err := seed(f.listN, "item", o.listSize); err != nil {
		return f, fmt.Errorf("seed list-n namespace: %w", err)
	}
	return f, nil
}

func (f *apiFixture) createNamespace(ctx context.Context, ns *corev1.Namespace) (string, error) {
	ns.Labels = map[string]string{"app.kubernetes.io/managed-by": "skiff-bench"}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	got, err := f.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("create namespace: %w", err)
	}
	f.created = append(f.created, got.Name)
	return got.Name, nil
}

func (f *apiFixture) create(ctx context.Context, cm *corev1.ConfigMap) error {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	if _, err := f.client.CoreV1().ConfigMaps(cm.Namespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create configmap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	return nil
}

// request returns the request function of op in mode.
func (f *apiFixture) request(op, mode string, o *apiOptions) request {
	cms := f.client.CoreV1().ConfigMaps
	bounded := func(do func(ctx context.Context, i int) error) request {
		return func(ctx context.Context, i int) error {
			ctx, cancel := context.WithTimeout(ctx, f.timeout)
			defer cancel()
			return do(ctx, i)
		}
	}
	switch op {
	case opCreate:
		return bounded(func(ctx context.Context, i int) error {
			_, err := cms(f.crud).Create(ctx, newConfigMap(f.crud, fmt.Sprintf("%s-%d", mode, i), i), metav1.CreateOptions{})
			return err
		})
	case opGet:
		return bounded(func(ctx context.Context, i int) error {
			_, err := cms(f.crud).Get(ctx, f.pool[i%len(f.pool)], metav1.GetOptions{})
			return err
		})
	case opUpdate:
		return bounded(func(ctx context.Context, i int) error {
			_, err := cms(f.crud).Update(ctx, newConfigMap(f.crud, f.pool[i%len(f.pool)], i), metav1.UpdateOptions{})
			return err
		})
	case opList1, opListN:
		ns, want := f.list1, 1
		if op == opListN {
			ns, want = f.listN, o.listSize
		}
		return bounded(func(ctx context.Context, _ int) error {
			l, err := cms(ns).List(ctx, metav1.ListOptions{ResourceVersion: o.listRV})
			if err == nil && len(l.Items) != want {
				err = fmt.Errorf("list %s: got %d items, want %d", ns, len(l.Items), want)
			}
			return err
		})
	}
	// validate rejected every other op.
	return func(context.Context, int) error { return fmt.Errorf("unknown operation %q", op) }
}

// cleanup deletes the namespaces f created; the cluster's namespace
// controller deletes their contents. It does not use the benchmark's
// context, which may be cancelled already.
func (f *apiFixture) cleanup(progress io.Writer) error {
	if f == nil || len(f.created) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, ns := range slices.Backward(f.created) {
		if err := f.client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("delete namespace %s: %w", ns, err))
		}
	}
	fmt.Fprintf(progress, "api: deleted namespaces %s\n", strings.Join(f.created, ", "))
	return errors.Join(errs...)
}
