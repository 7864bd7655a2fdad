package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-project/skiff/pkg/agent"
	"github.com/skiff-project/skiff/pkg/cluster"
	"github.com/skiff-project/skiff/pkg/proxy"
)

const proxyLong = `Runs the service proxy of this machine alone, Skiff's kube-proxy: it watches
Services, EndpointSlices and Nodes and programs the packet filter so that
connections to a Service's ClusterIP, NodePorts and external IPs reach one of
its ready endpoints, picked at random (or by client IP with sessionAffinity
ClientIP). A Service port without endpoints refuses connections. UDP flows to
removed endpoints are flushed from conntrack (when conntrack is installed).

Modes (--proxy-mode), as upstream's:
  iptables   KUBE-* chains in the nat and filter tables, written with
             iptables-restore (the default)
  nftables   one nftables table, "ip kube-proxy", written with nft

Changes are applied within --min-sync-period, touching only the rules of the
Services that changed; every rule is rewritten every --sync-period. Unless
--node-routes=false, it also routes every other Node's pod range via that
Node's InternalIP when the address is on a directly connected network.

The API server is found through --kubeconfig, else $KUBECONFIG, else the
in-cluster configuration when running in a pod, else the local server's
<data-dir>/admin.kubeconfig. In a pod, prefer a kubeconfig naming the API
server's real address: the kubernetes Service's ClusterIP works only once a
proxy has programmed it.

To run as a privileged hostNetwork DaemonSet whose image holds only the skiff
binary, mount the host's / at /host and pass --host-root=/host: iptables, nft,
ip and conntrack then run from the host.

Stopping the proxy leaves the rules in place, so Services keep working across
restarts; "skiff proxy --cleanup" removes every rule, chain, table and route
of both modes.`

func newProxyCommand(d deps) *cobra.Command {
	var (
		kubeconfig string
		cleanup    bool
		logLevel   int
		mode       string
		cfg        = proxy.Config{NodeRoutes: true}
	)
	cidr := cluster.DefaultServerConfig().ClusterCIDR
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run the service proxy (kube-proxy) for this machine",
		Long:  proxyLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cluster.ConfigureLogging(logLevel)
			ctx, stop := signalContext(cmd.Context(), d.stderr, os.Exit)
			defer stop()
			if cleanup {
				ctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				return proxy.Cleanup(ctx, proxy.Config{HostRoot: cfg.HostRoot})
			}
			cfg.Mode = proxy.Mode(mode)
			cfg.ClusterCIDR = cidr
			restCfg, err := proxyRestConfig(d, kubeconfig)
			if err != nil {
				return err
			}
			if cfg.Client, err = kubernetes.NewForConfig(rest.AddUserAgent(restCfg, "kube-proxy")); err != nil {
				return fmt.Errorf("create API client: %w", err)
			}
			if cfg.NodeName == "" {
				if cfg.NodeName, err = agent.DefaultNodeName(); err != nil {
					return err
				}
			}
			p, err := proxy.New(cfg)
			if err != nil {
				return err
			}
			return p.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the API server (default $KUBECONFIG, then the in-cluster config in a pod, then <data-dir>/admin.kubeconfig)")
	f.StringVar(&cfg.NodeName, "hostname-override", "", "name of this machine's Node (default: the hostname)")
	f.StringVar(&mode, "proxy-mode", string(proxy.ModeIPTables), `which proxy mode to use: "iptables" or "nftables"`)
	f.Var(prefixValue{&cidr}, "cluster-cidr", "the pod network; traffic to a ClusterIP from outside it is masqueraded")
	f.DurationVar(&cfg.SyncPeriod, "sync-period", proxy.DefaultSyncPeriod, "how often every rule is rewritten from scratch (repairing rules changed by others)")
	f.DurationVar(&cfg.MinSyncPeriod, "min-sync-period", proxy.DefaultMinSyncPeriod, "the shortest time between two syncs; changes within it are applied together (e.g. '5s', '1m')")
	f.BoolVar(&cfg.NodeRoutes, "node-routes", cfg.NodeRoutes, "route every other Node's pod range via its InternalIP when that address is on a directly connected network")
	f.StringVar(&cfg.HostRoot, "host-root", "", "the host's root file system, when running in a container (e.g. /host): the network tools run chrooted into it")
	f.BoolVar(&cleanup, "cleanup", false, "instead of running: remove every rule, chain, table and route the proxy installs (both modes), then exit")
	f.IntVarP(&logLevel, "v", "v", 0, "number for the log level verbosity (as upstream -v; 2 logs every sync)")
	return cmd
}

// proxyRestConfig finds the API server: --kubeconfig, else $KUBECONFIG,
// else the in-cluster configuration of a pod, else the local server's
// admin kubeconfig.
func proxyRestConfig(d deps, flag string) (*rest.Config, error) {
	if flag == "" && d.getenv("KUBECONFIG") == "" && d.getenv("KUBERNETES_SERVICE_HOST") != "" {
		cfg, err := rest.InClusterConfig()
		if err == nil {
			return cfg, nil
		}
		if !errors.Is(err, rest.ErrNotInCluster) {
			return nil, fmt.Errorf("in-cluster config: %w", err)
		}
	}
	path := kubeconfigPath(d, flag)
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w (pass --kubeconfig)", path, err)
	}
	return cfg, nil
}
