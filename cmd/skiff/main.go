// Command skiff is the single binary of Skiff, a Kubernetes-compatible
// cluster. Each role is a subcommand; this package only wires flags to the
// packages that implement the roles.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/skiff-project/skiff/pkg/bench"
	"github.com/skiff-project/skiff/pkg/cluster"
	"github.com/skiff-project/skiff/pkg/sim"
)

// deps are the process-level inputs of the command tree, injected so that
// tests can build the tree without touching the real environment or
// starting a cluster.
type deps struct {
	// getenv reads an environment variable (os.Getenv in main).
	getenv func(string) string
	// runServer runs the control plane (cluster.RunServer in main).
	runServer func(context.Context, cluster.ServerConfig) error
	// runKubectl runs kubectl with the given arguments (without "kubectl").
	runKubectl func(args []string) error
	// stdout and stderr receive command output.
	stdout, stderr io.Writer
}

const rootLong = `Skiff is a Kubernetes-compatible cluster in one binary.

It implements the Kubernetes architecture: every component talks only to the
API server, the API server is the only component that touches etcd, and every
controller is a reconciliation loop. The real kubectl and any client-go
program work against it unchanged.

Roles (one binary, many roles):
  skiff server         control plane all-in-one: embedded etcd (unless
                       --etcd-servers), apiserver, controller-manager,
                       scheduler, plus the node agent for this machine unless
                       --disable-agent. Creates the CA, certificates and an
                       admin kubeconfig in its data dir on first start.
  skiff kubectl ...    the real kubectl, pointed at the local cluster
  skiff version        version of Skiff and of the Kubernetes API it serves

  skiff controller-manager, skiff scheduler
                       each control loop component alone, for split
                       deployments (they reach the API server through
                       --kubeconfig)
  skiff sim --nodes N  N simulated nodes (the real kubelet code with a
                       simulated runtime) for scale tests
  skiff agent          the node agent alone (kubelet on a private containerd)
                       against a cluster's --kubeconfig
  skiff proxy          the service proxy alone (iptables or nftables); the
                       server runs it on every node as the kube-proxy DaemonSet
  skiff dns            the cluster DNS alone; the server runs it as the
                       coredns Deployment behind the kube-dns Service
  skiff image import   load image tarballs into this node's containerd
  skiff bench ...      benchmarks to run against a cluster (api, startup,
                       scheduling, pods)

Planned roles, not available in this build: joining agents with --server and
--token; the apiserver alone.

Quick start (as root):
  skiff server &                 # data in /var/lib/skiff
  skiff kubectl get nodes`

func newRootCommand(d deps) *cobra.Command {
	root := &cobra.Command{
		Use:   "skiff",
		Short: "Skiff: a Kubernetes-compatible cluster in one binary",
		Long:  rootLong,
		// Flag errors print usage; once flags parsed, a failure is about the
		// work itself and usage would only bury the error message.
		PersistentPreRun: func(cmd *cobra.Command, _ []string) { cmd.SilenceUsage = true },
		// Without subcommand, show the help rather than an error.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetOut(d.stdout)
	root.SetErr(d.stderr)
	root.CompletionOptions.HiddenDefaultCmd = true
	root.AddCommand(
		newServerCommand(d),
		newControllerManagerCommand(d),
		newSchedulerCommand(d),
		newAgentCommand(d), newImageCommand(d),
		newProxyCommand(d),
		newDNSCommand(d),
		sim.NewCommand(),
		bench.NewCommand(),
		newKubectlCommand(d),
		newVersionCommand(d),
	)
	return root
}

func main() {
	// Multi-call binary: a symlink or copy named kubectl behaves exactly like
	// kubectl, so `ln -s skiff /usr/local/bin/kubectl` gives a matching client.
	if filepath.Base(os.Args[0]) == "kubectl" {
		if err := runKubectl(os.Args[1:]); err != nil {
			fmt.Fprintf(os.Stderr, "error: %v\n", err)
			os.Exit(1)
		}
		return
	}

	d := deps{
		getenv:     os.Getenv,
		runServer:  cluster.RunServer,
		runKubectl: runKubectl,
		stdout:     os.Stdout,
		stderr:     os.Stderr,
	}
	if err := newRootCommand(d).ExecuteContext(context.Background()); err != nil {
		// cobra has already printed "Error: ..." to stderr.
		os.Exit(1)
	}
}
