package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProxyHelp(t *testing.T) {
	res := run(nil, "proxy", "--help")
	if res.err != nil {
		t.Fatalf("proxy --help: %v", res.err)
	}
	for _, flag := range []string{"--kubeconfig", "--hostname-override", "--proxy-mode", "--cluster-cidr", "--sync-period",
		"--min-sync-period", "--cleanup", "--host-root", "--node-routes", "-v, --v"} {
		if !strings.Contains(res.stdout, flag) {
			t.Errorf("help lacks %s:\n%s", flag, res.stdout)
		}
	}
}

func TestProxyRejectsBadFlags(t *testing.T) {
	if res := run(nil, "proxy", "--cluster-cidr", "not-a-cidr"); res.err == nil {
		t.Error("bad --cluster-cidr accepted")
	}
}

// TestProxyRestConfig checks the kubeconfig search order: --kubeconfig,
// $KUBECONFIG, then the data dir's admin kubeconfig (outside a pod).
func TestProxyRestConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, server string) string {
		p := filepath.Join(dir, name)
		kc := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: " + server +
			"\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: t\ncurrent-context: c\n"
		if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flagPath := write("flag.kubeconfig", "https://flag:6443")
	envPath := write("env.kubeconfig", "https://env:6443")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("data/admin.kubeconfig", "https://admin:6443")

	tests := []struct {
		name, flag string
		env        map[string]string
		want       string
	}{
		{"flag wins", flagPath, map[string]string{"KUBECONFIG": envPath}, "https://flag:6443"},
		{"environment", "", map[string]string{"KUBECONFIG": envPath}, "https://env:6443"},
		{"admin kubeconfig of the data dir", "", map[string]string{"SKIFF_DATA_DIR": filepath.Join(dir, "data")}, "https://admin:6443"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := proxyRestConfig(deps{getenv: fakeEnv(tt.env)}, tt.flag)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != tt.want {
				t.Errorf("host %q, want %q", cfg.Host, tt.want)
			}
		})
	}
	if _, err := proxyRestConfig(deps{getenv: fakeEnv(nil)}, filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing kubeconfig: %v", err)
	}
}
