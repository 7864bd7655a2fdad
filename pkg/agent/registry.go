package agent

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"k8s.io/klog/v2"
)

// Registries over plain HTTP.
//
// The private containerd reads its registry configuration from
// <containerd dir>/certs.d (config_path), one <host[:port]>/hosts.toml per
// registry, at every pull, so no restart is needed. containerd itself
// already talks plain HTTP to registries on loopback addresses
// (127.0.0.0/8, ::1, localhost), like docker does: checked on containerd
// 1.6.20, where a pull from 127.0.0.1:<port> with basic auth works with
// no hosts.toml at all. Any other registry without TLS must be named with
// --insecure-registry, and the agent writes its hosts.toml.

// certsDir is the private containerd's registry configuration directory
// (config_path in the config pkg/containerd writes for Dir=paths.Containerd).
func certsDir(paths Paths) string { return filepath.Join(paths.Containerd, "certs.d") }

// validateRegistry checks an --insecure-registry value: "host" or
// "host:port", without scheme or path.
func validateRegistry(r string) error {
	if r == "" || strings.ContainsAny(r, "/ \t") || strings.Contains(r, "://") {
		return fmt.Errorf("insecure registry %q: want host or host:port", r)
	}
	if host, port, err := net.SplitHostPort(r); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 || host == "" {
			return fmt.Errorf("insecure registry %q: bad port", r)
		}
	}
	return nil
}

// writeInsecureRegistries writes a hosts.toml for each registry telling
// containerd to use plain HTTP for it. Files of registries no longer
// listed are left alone: the directory may hold an administrator's own.
func writeInsecureRegistries(dir string, registries []string) error {
	for _, reg := range registries {
		if err := validateRegistry(reg); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		d := filepath.Join(dir, reg)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("agent: creating %s: %w", d, err)
		}
		server := strconv.Quote("http://" + reg)
		content := "# Written by skiff for --insecure-registry " + reg + ": plain HTTP.\n" +
			"server = " + server + "\n" +
			"[host." + server + "]\n" +
			"  capabilities = [\"pull\", \"resolve\"]\n"
		// Through a rename: containerd may read the file at any time.
		file := filepath.Join(d, "hosts.toml")
		if err := os.WriteFile(file+".tmp", []byte(content), 0o644); err != nil {
			return fmt.Errorf("agent: writing hosts.toml of %s: %w", reg, err)
		}
		if err := os.Rename(file+".tmp", file); err != nil {
			return fmt.Errorf("agent: writing hosts.toml of %s: %w", reg, err)
		}
	}
	return nil
}

// configureRegistries writes the hosts.toml files of cfg's insecure
// registries for the private containerd. An external runtime's registry
// configuration is its owner's: the flag is then only reported.
func configureRegistries(ctx context.Context, cfg Config, paths Paths, rt *nodeRuntime) error {
	if len(cfg.InsecureRegistries) == 0 {
		return nil
	}
	if !rt.private {
		klog.FromContext(ctx).Info("ignoring --insecure-registry: the external runtime's registry configuration is its own", "registries", cfg.InsecureRegistries)
		return nil
	}
	return writeInsecureRegistries(certsDir(paths), cfg.InsecureRegistries)
}
