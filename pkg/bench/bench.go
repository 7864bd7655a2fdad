// Package bench implements `skiff bench`: benchmarks users run against a
// cluster (any Kubernetes-compatible API server, Skiff or not) or against
// the skiff binary itself.
//
// Each subcommand lives in its own file as a newXCommand(*globalOptions)
// constructor whose run function returns a report; run prints the report as
// a table or, with -o json, as JSON. Adding a benchmark means adding such a
// file and one line to NewCommand.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-project/skiff/pkg/cluster"
)

// NewCommand returns the `bench` command with its subcommands. It reads the
// environment (KUBECONFIG, SKIFF_DATA_DIR) only when a subcommand runs.
func NewCommand() *cobra.Command {
	g := &globalOptions{output: "table"}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmark a cluster or the skiff binary",
		Long: `Benchmarks users can run on their own machine and cluster.

  skiff bench api       API request latency and throughput through client-go,
                        at a fixed rate and at maximum throughput, and watch
                        fan-out delivery latency
  skiff bench startup   time from "skiff server" start to /readyz, cold and
                        warm, and the server's memory when idle and loaded
  skiff bench scheduling
                        simulated nodes plus a Deployment (or bare pods):
                        time to all scheduled and Running, pods/s, startup
                        latency, server memory
  skiff bench pods      real pods on one node (containerd): create → Running
                        and Ready latency, pods/s, the kubelet's memory

Each prints a table, or JSON with -o json.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.PersistentFlags().StringVarP(&g.output, "output", "o", g.output, `Output format: "table" or "json".`)
	cmd.AddCommand(
		newAPICommand(g),
		newStartupCommand(g),
		newSchedulingCommand(g),
		newPodsCommand(g),
	)
	return cmd
}

// globalOptions are the flags shared by every subcommand.
type globalOptions struct {
	output string
}

// report is what a benchmark returns: JSON-marshalable data that can also
// print itself as human-readable tables.
type report interface {
	writeTable(w io.Writer) error
}

// run runs bench with a context cancelled on SIGINT or SIGTERM (so that a
// benchmark interrupted halfway still cleans up what it created) and prints
// its report to cmd's output in the format g asks for.
func run(cmd *cobra.Command, g *globalOptions, bench func(ctx context.Context, progress io.Writer) (report, error)) error {
	if g.output != "table" && g.output != "json" {
		return fmt.Errorf("--output %q: must be table or json", g.output)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := bench(ctx, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	return writeReport(cmd.OutOrStdout(), g.output, r)
}

// writeReport prints r to w as "table" or "json".
func writeReport(w io.Writer, format string, r report) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("write JSON report: %w", err)
		}
		return nil
	}
	return r.writeTable(w)
}

// clientOptions are the flags of subcommands that talk to an existing
// cluster.
type clientOptions struct {
	kubeconfig string
	qps        float32
	burst      int
	timeout    time.Duration
}

func (o *clientOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.kubeconfig, "kubeconfig", "",
		"Path to the kubeconfig of the cluster. Default: $KUBECONFIG, else $"+cluster.DataDirEnv+"/admin.kubeconfig, else "+cluster.AdminKubeconfigPath(cluster.DefaultDataDir)+".")
	fs.Float32Var(&o.qps, "qps", 100000,
		"Client-side rate limit (requests/s) of client-go; negative disables it. Keep it above the rates measured, or it shapes the results.")
	fs.IntVar(&o.burst, "burst", 100000, "Client-side burst of client-go's rate limiter.")
	fs.DurationVar(&o.timeout, "request-timeout", 30*time.Second, "Timeout of each API request (watches excepted).")
}

// kubeconfigPath resolves the kubeconfig to use from the flag and getenv.
func (o *clientOptions) kubeconfigPath(getenv func(string) string) string {
	if o.kubeconfig != "" {
		return o.kubeconfig
	}
	if p := getenv("KUBECONFIG"); p != "" {
		return p
	}
	dir := cluster.DefaultDataDir
	if d := getenv(cluster.DataDirEnv); d != "" {
		dir = d
	}
	return cluster.AdminKubeconfigPath(dir)
}

// restConfig loads the client configuration with the flags applied.
func (o *clientOptions) restConfig() (*rest.Config, error) {
	path := o.kubeconfigPath(os.Getenv)
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: path}
	if o.kubeconfig == "" && os.Getenv("KUBECONFIG") != "" {
		// $KUBECONFIG may list several files to merge.
		rules = clientcmd.NewDefaultClientConfigLoadingRules()
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", path, err)
	}
	o.apply(cfg)
	return cfg, nil
}

// apply sets the rate limits of o on cfg. It leaves cfg.Timeout alone: an
// HTTP client timeout would also cut watches, so the benchmarks bound each
// request with a context deadline of o.timeout instead.
func (o *clientOptions) apply(cfg *rest.Config) {
	cfg.QPS = o.qps
	cfg.Burst = o.burst
	cfg.UserAgent = "skiff-bench"
}

// newClient builds a clientset from cfg.
func newClient(cfg *rest.Config) (kubernetes.Interface, error) {
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build client: %w", err)
	}
	return c, nil
}
