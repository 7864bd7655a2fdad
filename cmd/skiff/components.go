package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-project/skiff/pkg/cluster"
	"github.com/skiff-project/skiff/pkg/controllermanager"
)

// kubeconfigFlag resolves --kubeconfig: the flag, else $KUBECONFIG, else
// the local server's admin kubeconfig.
func kubeconfigPath(d deps, flag string) string {
	if flag != "" {
		return flag
	}
	if env := d.getenv("KUBECONFIG"); env != "" {
		return env
	}
	dir := d.getenv(cluster.DataDirEnv)
	if dir == "" {
		dir = cluster.DefaultDataDir
	}
	return cluster.AdminKubeconfigPath(dir)
}

func newControllerManagerCommand(d deps) *cobra.Command {
	var (
		kubeconfig  string
		leaderElect bool
		controllers []string
		cfg         = cluster.DefaultServerConfig()
	)
	cmd := &cobra.Command{
		Use:   "controller-manager",
		Short: "Run the controller manager alone, against an existing API server",
		Long: `Run Skiff's controller manager (deployment, replicaset, garbage collector,
namespace, node lifecycle, ... controllers) as a separate process. It talks to
the API server named by --kubeconfig like any client. With --leader-elect
(the default) several instances can run; one leads at a time.

skiff server already runs a controller manager in-process; use this command
for split deployments.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfigPath(d, kubeconfig))
			if err != nil {
				return fmt.Errorf("load kubeconfig: %w (pass --kubeconfig)", err)
			}
			ctx, stop := signalContext(cmd.Context(), d.stderr, os.Exit)
			defer stop()
			return controllermanager.Run(ctx, controllermanager.Options{
				Config:                              restCfg,
				Controllers:                         controllers,
				LeaderElect:                         leaderElect,
				NodeMonitorGracePeriod:              cfg.NodeMonitorGracePeriod,
				DefaultNotReadyTolerationSeconds:    cfg.DefaultNotReadyTolerationSeconds,
				DefaultUnreachableTolerationSeconds: cfg.DefaultUnreachableTolerationSeconds,
				ClusterCIDR:                         cfg.ClusterCIDR.String(),
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the API server (default $KUBECONFIG, then <data-dir>/admin.kubeconfig)")
	fs.BoolVar(&leaderElect, "leader-elect", true, "run controllers only while holding the kube-system/kube-controller-manager Lease")
	fs.StringSliceVar(&controllers, "controllers", nil, `controllers to enable: "*" for all (default), "-name" to disable one`)
	fs.DurationVar(&cfg.NodeMonitorGracePeriod, "node-monitor-grace-period", 40*time.Second, "how long a node may miss heartbeats before it is marked NotReady/Unknown")
	fs.Int64Var(&cfg.DefaultNotReadyTolerationSeconds, "default-not-ready-toleration-seconds", 300, "seconds pods stay on a not-ready node without their own toleration")
	fs.Int64Var(&cfg.DefaultUnreachableTolerationSeconds, "default-unreachable-toleration-seconds", 300, "seconds pods stay on an unreachable node without their own toleration")
	fs.Var(prefixValue{&cfg.ClusterCIDR}, "cluster-cidr", "pod network; each node gets a /24 podCIDR from it")
	return cmd
}

func newSchedulerCommand(d deps) *cobra.Command {
	var (
		kubeconfig  string
		leaderElect bool
	)
	cmd := &cobra.Command{
		Use:   "scheduler",
		Short: "Run the scheduler alone, against an existing API server",
		Long: `Run Skiff's scheduler as a separate process: it watches pods without a node,
picks a node for each and binds it through the API server named by
--kubeconfig. With --leader-elect (the default) several instances can run.

skiff server already runs a scheduler in-process; use this command for split
deployments.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfigPath(d, kubeconfig))
			if err != nil {
				return fmt.Errorf("load kubeconfig: %w (pass --kubeconfig)", err)
			}
			ctx, stop := signalContext(cmd.Context(), d.stderr, os.Exit)
			defer stop()
			return cluster.RunScheduler(ctx, cluster.SchedulerOptions{Config: restCfg, LeaderElect: leaderElect})
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the API server (default $KUBECONFIG, then <data-dir>/admin.kubeconfig)")
	cmd.Flags().BoolVar(&leaderElect, "leader-elect", true, "schedule only while holding the kube-system/kube-scheduler Lease")
	return cmd
}
