package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDNSHelpExplainsRecords(t *testing.T) {
	res := run(nil, "dns", "--help")
	if res.err != nil {
		t.Fatal(res.err)
	}
	for _, want := range []string{
		"<svc>.<ns>.svc.cluster.local", "_<port>._<proto>", "<a-b-c-d>.<ns>.pod.cluster.local",
		"in-addr.arpa", "NXDOMAIN", "--upstream", "--cluster-domain", "--health-address", "--ready-address",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("dns --help lacks %q", want)
		}
	}
	if res := run(nil, "--help"); !strings.Contains(res.stdout, "dns") {
		t.Errorf("root help does not list the dns command")
	}
}

// TestDNSFlagErrors checks that bad flags fail before anything is served.
func TestDNSFlagErrors(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	const kc = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if err := os.WriteFile(kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{"missing kubeconfig", map[string]string{"KUBECONFIG": "/nonexistent/kubeconfig"}, nil, "load kubeconfig"},
		{"ttl zero", nil, []string{"--ttl", "0"}, "--ttl"},
		{"bad address", nil, []string{"--kubeconfig", kubeconfig, "--address", "nope"}, "address"},
		{"bad upstream", nil, []string{"--kubeconfig", kubeconfig, "--upstream", "dns.google"}, "upstream"},
		{"positional argument", nil, []string{"extra"}, "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := run(tc.env, append([]string{"dns"}, tc.args...)...)
			if res.err == nil || !strings.Contains(res.err.Error(), tc.wantErr) {
				t.Errorf("error = %v, want it to mention %q", res.err, tc.wantErr)
			}
		})
	}
}
