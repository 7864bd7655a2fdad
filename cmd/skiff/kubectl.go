package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/component-base/cli"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/plugin"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/skiff-project/skiff/pkg/cluster"
)

func newKubectlCommand(d deps) *cobra.Command {
	return &cobra.Command{
		Use:   "kubectl [kubectl arguments]",
		Short: "Run kubectl against the local cluster",
		Long: `Runs the real kubectl (k8s.io/kubectl), built into this binary, with all
arguments passed through unchanged: see "skiff kubectl --help".

Unless KUBECONFIG is set or --kubeconfig is given, it uses the admin
kubeconfig of the local server: $SKIFF_DATA_DIR/admin.kubeconfig, by default
/var/lib/skiff/admin.kubeconfig (readable by root only).

The binary also acts as kubectl when invoked under that name, e.g. through
a symlink: ln -s "$(command -v skiff)" /usr/local/bin/kubectl`,
		// kubectl parses its own flags, including --help.
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			return d.runKubectl(args)
		},
	}
}

// runKubectl runs kubectl with args (the arguments after "kubectl") the way
// upstream's kubectl main does, after defaulting KUBECONFIG. On failure it
// prints the error the way kubectl does and exits the process with kubectl's
// exit code, so scripts see the same behaviour as with the real kubectl; it
// returns only on success or on an error kubectl did not handle.
func runKubectl(args []string) error {
	if path := defaultKubeconfig(args, os.Getenv); path != "" {
		// The environment (rather than the --kubeconfig flag) also reaches
		// kubectl plugins and `kubectl config` subcommands.
		if err := os.Setenv("KUBECONFIG", path); err != nil {
			return fmt.Errorf("set KUBECONFIG: %w", err)
		}
		// Without the file kubectl silently falls back to localhost:8080 and
		// reports a refused connection there, which hides the real cause.
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && needsServer(args) {
			fmt.Fprintf(os.Stderr, "skiff: %s does not exist: start \"skiff server\" first (it writes that file), or set KUBECONFIG or --kubeconfig\n", path)
		}
	}
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	// These options are what kubectlcmd.NewDefaultKubectlCommand uses; it is
	// not called directly because it reads os.Args, which here start with
	// "skiff kubectl".
	kubectl := kubectlcmd.NewDefaultKubectlCommandWithArgs(kubectlcmd.KubectlOptions{
		PluginHandler: kubectlcmd.NewDefaultPluginHandler(plugin.ValidPluginFilenamePrefixes),
		Arguments:     append([]string{"kubectl"}, args...),
		ConfigFlags: genericclioptions.NewConfigFlags(true).
			WithDeprecatedPasswordFlag().
			WithDiscoveryBurst(300).
			WithDiscoveryQPS(50.0).
			WithWarningPrinter(streams),
		IOStreams: streams,
	})
	kubectl.SetArgs(args)
	if err := cli.RunNoErrOutput(kubectl); err != nil {
		// Prints like kubectl ("error: ...") and exits with its status.
		cmdutil.CheckErr(err)
	}
	return nil
}

// defaultKubeconfig returns the kubeconfig path kubectl should use when the
// user chose none (KUBECONFIG unset or empty and no --kubeconfig flag before
// a "--"), and "" when the user's choice must stand.
func defaultKubeconfig(args []string, getenv func(string) string) string {
	if getenv("KUBECONFIG") != "" {
		return ""
	}
	for _, arg := range args {
		if arg == "--" {
			break
		}
		if arg == "--kubeconfig" || strings.HasPrefix(arg, "--kubeconfig=") {
			return ""
		}
	}
	return cluster.AdminKubeconfigPath(dataDir(getenv))
}

// needsServer reports whether a kubectl invocation will contact the API
// server; only then is a missing kubeconfig worth a warning. It errs towards
// true: a stray hint on stderr is cheaper than a misleading error.
func needsServer(args []string) bool {
	command := ""
	for _, arg := range args {
		if arg == "--" {
			break
		}
		switch arg {
		case "-h", "--help", "--client", "--client=true":
			return false
		}
		// The first word that is not a flag names the command; a flag's
		// value (-n default) may be mistaken for it, which only errs to true.
		if command == "" && !strings.HasPrefix(arg, "-") {
			command = arg
		}
	}
	switch command {
	case "", "help", "completion", "config", "plugin", "options", "kustomize":
		return false
	}
	return true
}

// dataDir returns $SKIFF_DATA_DIR, or the default data dir when it is unset.
func dataDir(getenv func(string) string) string {
	if dir := getenv(cluster.DataDirEnv); dir != "" {
		return dir
	}
	return cluster.DefaultDataDir
}
