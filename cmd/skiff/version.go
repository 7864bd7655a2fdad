package main

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-project/skiff/pkg/cluster"
)

// commit is the git commit the binary was built from, set only by the
// linker (-ldflags "-X main.commit=$(git rev-parse --short HEAD)", as the
// Makefile does). The Skiff version itself is cluster.Version, because the
// API server reports it too.
var commit = ""

func newVersionCommand(_ deps) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of Skiff and of the Kubernetes API it serves",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), versionText(cluster.Version, commit, cluster.KubernetesVersion))
			return err
		},
	}
}

// versionText renders the version report; commit may be empty.
func versionText(version, commit, kubernetesVersion string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Skiff version: %s\n", version)
	if commit != "" {
		fmt.Fprintf(&b, "Git commit: %s\n", commit)
	}
	fmt.Fprintf(&b, "Kubernetes API: %s (kubectl and client-go of this version work unchanged)\n", kubernetesVersion)
	fmt.Fprintf(&b, "Go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return b.String()
}
