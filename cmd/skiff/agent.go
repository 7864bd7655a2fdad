package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-project/skiff/pkg/agent"
	"github.com/skiff-project/skiff/pkg/cluster"
	"github.com/skiff-project/skiff/pkg/images"
)

const agentLong = `Runs the node agent of this machine: the kubelet on a private containerd
with a CNI bridge, registering the node with the cluster of --kubeconfig and
running the pods bound to it.

Everything lives under <data-dir>/agent: containerd's state and socket, the
image tarballs imported at every start (agent/images, for air-gapped
installs) and the container logs (agent/pods-logs). The pause and busybox
images are built locally when missing (the pause image needs Skiff's source
tree, or a pause tarball in agent/images).

Stopping the agent leaves containerd and the containers running, like
upstream's kubelet: the next start re-adopts them without restarting them.
"skiff agent --cleanup" removes every pod, stops containerd and deletes the
bridge and the pod cgroups.`

func newAgentCommand(d deps) *cobra.Command {
	var (
		kubeconfig string
		cleanup    bool
		cfg        = agent.Config{DataDir: dataDir(d.getenv)}
	)
	cmd := &cobra.Command{
		Use:   "agent --kubeconfig FILE",
		Short: "Run the node agent (kubelet on containerd) for this machine",
		Long:  agentLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd.Context(), d.stderr, os.Exit)
			defer stop()
			if cleanup {
				// Tears down whatever the agent of --data-dir left;
				// needs no cluster.
				ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				defer cancel()
				return agent.Cleanup(ctx, cfg.DataDir, cfg.BridgeName, cfg.CgroupRoot)
			}
			if kubeconfig == "" {
				// Joining with --server and --token comes with node
				// join; until then the cluster is named explicitly.
				return errors.New("--kubeconfig is required (joining with --server and --token is not available yet)")
			}
			restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return fmt.Errorf("load kubeconfig: %w", err)
			}
			cfg.RestConfig = restCfg
			if cfg.NodeName == "" {
				if cfg.NodeName, err = agent.DefaultNodeName(); err != nil {
					return err
				}
			}
			cfg.SkiffImage = cluster.SkiffImage()
			return agent.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to join (required unless --cleanup)")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data directory; the agent keeps its state in <data-dir>/agent. Defaults to $SKIFF_DATA_DIR when set.")
	f.StringVar(&cfg.NodeName, "node-name", "", "name of this machine's Node (default: the hostname)")
	f.StringVar(&cfg.StaticPodPath, "pod-manifest-path", "", "directory of static pod manifests the kubelet runs and mirrors into the API (default <data-dir>/agent/manifests)")
	f.StringVar(&cfg.ContainerRuntimeEndpoint, "container-runtime-endpoint", "", "use this CRI endpoint instead of starting a private containerd")
	f.StringVar(&cfg.FallbackPodCIDR, "pod-cidr", "", "pod range to use when the control plane allocates none to the node within a timeout")
	f.StringSliceVar(&cfg.ClusterDNS, "cluster-dns", []string{agent.DefaultClusterDNS}, "DNS server IPs of pods with dnsPolicy ClusterFirst")
	f.StringVar(&cfg.ClusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain")
	f.StringVar(&cfg.BridgeName, "bridge-name", "", "name of the CNI bridge (default skiff0)")
	f.StringVar(&cfg.CgroupRoot, "cgroup-root", "", "cgroup under which the pods' kubepods tree lives (default /)")
	f.IntVar(&cfg.MaxPods, "max-pods", agent.DefaultMaxPods, "number of pods this node can run")
	f.StringSliceVar(&cfg.InsecureRegistries, "insecure-registry", nil, "registry (host or host:port) to pull from over plain HTTP, like docker's; loopback registries need none (repeatable)")
	f.BoolVar(&cleanup, "cleanup", false, "instead of running: remove every pod, stop containerd, delete the bridge and pod cgroups, then exit")
	return cmd
}

func newImageCommand(d deps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage the images of this machine's node agent",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	dir := dataDir(d.getenv)
	importCmd := &cobra.Command{
		Use:   "import FILE.tar...",
		Short: "Load docker-save or OCI image tarballs into the node's containerd",
		Long: `Loads docker-save or OCI image tarballs into the containerd of the node agent
whose data directory is --data-dir (it must be running), in the namespace the
CRI uses, so pods can use the images without a registry. To have images
loaded at every agent start, put the tarballs in <data-dir>/agent/images.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			socket := agent.PathsFor(dir).Socket()
			if _, err := os.Stat(socket); err != nil {
				return fmt.Errorf("no node agent containerd at %s (is the agent running with --data-dir %s?): %w", socket, dir, err)
			}
			var errs []error
			for _, f := range args {
				if err := images.Import(cmd.Context(), "", socket, f); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintf(d.stdout, "imported %s\n", f)
			}
			return errors.Join(errs...)
		},
	}
	importCmd.Flags().StringVar(&dir, "data-dir", dir, "data directory of the node agent. Defaults to $SKIFF_DATA_DIR when set.")
	cmd.AddCommand(importCmd)
	return cmd
}
