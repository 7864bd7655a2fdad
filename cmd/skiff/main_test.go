package main

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	utilnet "k8s.io/apimachinery/pkg/util/net"

	"github.com/skiff-project/skiff/pkg/cluster"
)

// fakeEnv returns a getenv over a fixed map.
func fakeEnv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// run executes the command tree with args and fake dependencies and returns
// what the server would have been started with (nil if it was not started),
// what kubectl would have been run with, the output and the error.
type runResult struct {
	serverCfg   *cluster.ServerConfig
	kubectlArgs []string
	stdout      string
	stderr      string
	err         error
}

func run(env map[string]string, args ...string) runResult {
	var res runResult
	var stdout, stderr bytes.Buffer
	d := deps{
		getenv: fakeEnv(env),
		runServer: func(ctx context.Context, cfg cluster.ServerConfig) error {
			if ctx.Err() != nil {
				return errors.New("context already cancelled")
			}
			res.serverCfg = &cfg
			return nil
		},
		runKubectl: func(args []string) error { res.kubectlArgs = args; return nil },
		stdout:     &stdout,
		stderr:     &stderr,
	}
	root := newRootCommand(d)
	root.SetArgs(args)
	res.err = root.ExecuteContext(context.Background())
	res.stdout, res.stderr = stdout.String(), stderr.String()
	return res
}

var netipComparers = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

func TestServerFlags(t *testing.T) {
	defaults := cluster.DefaultServerConfig()
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    func(c *cluster.ServerConfig)
		wantErr string
	}{
		{name: "defaults", want: func(*cluster.ServerConfig) {}},
		{
			name: "data dir from environment",
			env:  map[string]string{"SKIFF_DATA_DIR": "/srv/skiff"},
			want: func(c *cluster.ServerConfig) { c.DataDir = "/srv/skiff" },
		},
		{
			name: "flag beats environment",
			env:  map[string]string{"SKIFF_DATA_DIR": "/srv/skiff"},
			args: []string{"--data-dir=/tmp/x"},
			want: func(c *cluster.ServerConfig) { c.DataDir = "/tmp/x" },
		},
		{
			name: "every flag",
			args: []string{
				"--data-dir", "/d", "--bind-address", "0.0.0.0", "--secure-port", "7443",
				"--etcd-servers", "https://a:2379,https://b:2379", "--etcd-cafile", "ca", "--etcd-certfile", "crt", "--etcd-keyfile", "key",
				"--token-auth-file", "/tokens.csv", "--service-cluster-ip-range", "10.43.7.0/16", "--cluster-cidr", "10.42.0.0/16",
				"--disable-agent", "--node-name", "n1", "--node-monitor-grace-period", "1m",
				"--default-not-ready-toleration-seconds", "30", "--default-unreachable-toleration-seconds", "60",
				"--tls-san", "a.example.com,10.0.0.9", "--tls-san", "b.example.com", "-v", "4",
				"--authorization-mode", "AlwaysAllow", "--service-account-issuer", "https://issuer.example",
				"--service-node-port-range", "31000-31999",
			},
			want: func(c *cluster.ServerConfig) {
				c.DataDir = "/d"
				c.BindAddress = netip.MustParseAddr("0.0.0.0")
				c.SecurePort = 7443
				c.EtcdServers = []string{"https://a:2379", "https://b:2379"}
				c.EtcdCAFile, c.EtcdCertFile, c.EtcdKeyFile = "ca", "crt", "key"
				c.TokenAuthFile = "/tokens.csv"
				c.ServiceClusterIPRange = netip.MustParsePrefix("10.43.0.0/16")
				c.ClusterCIDR = netip.MustParsePrefix("10.42.0.0/16")
				c.DisableAgent = true
				c.NodeName = "n1"
				c.NodeMonitorGracePeriod = time.Minute
				c.DefaultNotReadyTolerationSeconds = 30
				c.DefaultUnreachableTolerationSeconds = 60
				c.TLSSANs = []string{"a.example.com", "10.0.0.9", "b.example.com"}
				c.LogLevel = 4
				c.AuthorizationMode = "AlwaysAllow"
				c.ServiceAccountIssuer = "https://issuer.example"
				c.ServiceNodePortRange = utilnet.PortRange{Base: 31000, Size: 1000}
			},
		},
		{name: "unknown authorization mode", args: []string{"--authorization-mode", "ABAC"}, wantErr: "--authorization-mode"},
		{name: "long log level", args: []string{"--log-level=2"}, want: func(c *cluster.ServerConfig) { c.LogLevel = 2 }},
		{name: "bad bind address", args: []string{"--bind-address", "localhost"}, wantErr: "IP address"},
		{name: "bad node port range", args: []string{"--service-node-port-range", "32767-30000"}, wantErr: "service-node-port-range"},
		{name: "bad cidr", args: []string{"--cluster-cidr", "10.244.0.0"}, wantErr: "CIDR"},
		{name: "invalid combination", args: []string{"--cluster-cidr", "10.96.0.0/16"}, wantErr: "invalid flags"},
		{name: "positional argument", args: []string{"extra"}, wantErr: "unknown command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := run(tc.env, append([]string{"server"}, tc.args...)...)
			if tc.wantErr != "" {
				if res.err == nil || !strings.Contains(res.err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want it to mention %q", res.err, tc.wantErr)
				}
				if res.serverCfg != nil {
					t.Errorf("server started despite the error")
				}
				return
			}
			if res.err != nil {
				t.Fatalf("execute: %v\nstderr: %s", res.err, res.stderr)
			}
			want := defaults
			tc.want(&want)
			if res.serverCfg == nil {
				t.Fatal("server was not started")
			}
			if diff := cmp.Diff(want, *res.serverCfg, netipComparers); diff != "" {
				t.Errorf("ServerConfig (-want +got):\n%s", diff)
			}
		})
	}
}

func TestServerRunErrorIsReturned(t *testing.T) {
	root := newRootCommand(deps{
		getenv:    fakeEnv(nil),
		runServer: func(context.Context, cluster.ServerConfig) error { return errors.New("etcd did not start") },
		stdout:    &bytes.Buffer{},
		stderr:    &bytes.Buffer{},
	})
	root.SetArgs([]string{"server"})
	if err := root.Execute(); err == nil || err.Error() != "etcd did not start" {
		t.Errorf("error = %v, want the server's error", err)
	}
}

func TestKubectlPassesArgumentsThrough(t *testing.T) {
	tests := [][]string{
		{"get", "pods", "-A", "-o", "wide"},
		{"--help"},
		{"version", "--client", "--kubeconfig=/x"},
		{"exec", "p", "--", "sh", "-c", "echo hi"},
		{},
	}
	for _, args := range tests {
		res := run(nil, append([]string{"kubectl"}, args...)...)
		if res.err != nil {
			t.Errorf("kubectl %q: %v", args, res.err)
		}
		if diff := cmp.Diff(args, res.kubectlArgs, cmp.Transformer("nilToEmpty", func(s []string) []string {
			if s == nil {
				return []string{}
			}
			return s
		})); diff != "" {
			t.Errorf("kubectl args (-want +got):\n%s", diff)
		}
	}
}

func TestDefaultKubeconfig(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{name: "nothing set", args: []string{"get", "nodes"}, want: "/var/lib/skiff/admin.kubeconfig"},
		{name: "data dir from env", env: map[string]string{"SKIFF_DATA_DIR": "/srv/s"}, want: "/srv/s/admin.kubeconfig"},
		{name: "KUBECONFIG set", env: map[string]string{"KUBECONFIG": "/home/u/.kube/config"}, want: ""},
		{name: "--kubeconfig value", args: []string{"get", "--kubeconfig", "/k", "pods"}, want: ""},
		{name: "--kubeconfig=value", args: []string{"--kubeconfig=/k", "get", "pods"}, want: ""},
		{name: "--kubeconfig after -- belongs to the command", args: []string{"exec", "p", "--", "tool", "--kubeconfig=/k"}, want: "/var/lib/skiff/admin.kubeconfig"},
		{name: "similar flag name", args: []string{"--kubeconfigs=/k"}, want: "/var/lib/skiff/admin.kubeconfig"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := defaultKubeconfig(tc.args, fakeEnv(tc.env)); got != tc.want {
				t.Errorf("defaultKubeconfig = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	res := run(nil, "version")
	if res.err != nil {
		t.Fatal(res.err)
	}
	if want := "Skiff version: " + cluster.Version + "\n"; !strings.HasPrefix(res.stdout, want) {
		t.Errorf("version output does not start with %q:\n%s", want, res.stdout)
	}
	if !strings.Contains(res.stdout, "Kubernetes API: "+cluster.KubernetesVersion) {
		t.Errorf("version output lacks the Kubernetes version:\n%s", res.stdout)
	}

	text := versionText("v0.1.0", "abc123", "v1.37.2")
	for _, want := range []string{"Skiff version: v0.1.0\n", "Git commit: abc123\n", "Kubernetes API: v1.37.2 "} {
		if !strings.Contains(text, want) {
			t.Errorf("versionText lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(versionText("dev", "", "v1.37.2"), "Git commit") {
		t.Errorf("versionText prints an empty commit")
	}
}

// TestKubernetesVersionMatchesAPIModule keeps the advertised Kubernetes
// version honest: k8s.io/api v0.X.Y is Kubernetes v1.X.Y, so bumping the
// module without the constant (or the reverse) fails here.
func TestKubernetesVersionMatchesAPIModule(t *testing.T) {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		t.Skip("no build info in the test binary")
	}
	for _, dep := range info.Deps {
		if dep.Path == "k8s.io/api" {
			want := "v1." + strings.TrimPrefix(dep.Version, "v0.")
			if cluster.KubernetesVersion != want {
				t.Errorf("cluster.KubernetesVersion = %s, but k8s.io/api %s is Kubernetes %s", cluster.KubernetesVersion, dep.Version, want)
			}
			return
		}
	}
	t.Errorf("k8s.io/api not among the dependencies")
}

func TestRootHelpListsRoles(t *testing.T) {
	res := run(nil, "--help")
	if res.err != nil {
		t.Fatal(res.err)
	}
	for _, want := range []string{"skiff server", "skiff kubectl", "Available Commands:", "server", "kubectl", "version"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	if res := run(nil, "agent"); res.err == nil {
		t.Errorf("unimplemented role 'agent' was accepted")
	}
}

// syncBuffer is an io.Writer safe for the signal goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSignalContext(t *testing.T) {
	var out syncBuffer
	exited := make(chan int, 1)
	ctx, stop := signalContext(context.Background(), &out, func(code int) { exited <- code })
	defer stop()

	// The handler is installed, so this signal does not kill the test binary.
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("context not cancelled after SIGTERM")
	}
	select {
	case code := <-exited:
		t.Fatalf("exited with %d after the first signal", code)
	default:
	}

	if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exited:
		if code != 130 {
			t.Errorf("exit code = %d, want 130 (128+SIGINT)", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no exit after the second signal")
	}
	if !strings.Contains(out.String(), "again") {
		t.Errorf("stderr = %q, want a message about the second signal", out.String())
	}
	stop() // idempotent
}

func TestSignalContextStopWithoutSignal(t *testing.T) {
	ctx, stop := signalContext(context.Background(), &syncBuffer{}, func(int) { t.Error("exit called") })
	stop()
	if ctx.Err() == nil {
		t.Errorf("context still live after stop")
	}
}

func TestNeedsServer(t *testing.T) {
	tests := []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"get", "nodes"}, true},
		{[]string{"-n", "kube-system", "get", "pods"}, true},
		{[]string{"version"}, true},
		{[]string{"version", "--client"}, false},
		{[]string{"get", "--help"}, false},
		{[]string{"-h"}, false},
		{[]string{"completion", "bash"}, false},
		{[]string{"config", "view"}, false},
		{[]string{"exec", "p", "--", "sh", "--help"}, true},
	}
	for _, tc := range tests {
		if got := needsServer(tc.args); got != tc.want {
			t.Errorf("needsServer(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}
