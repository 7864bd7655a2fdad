// Package e2e holds black-box tests: they start the real `skiff` binary and
// drive it with the real kubectl (several versions) and client-go.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// skiffBin is the binary under test: $SKIFF_BIN, or one built by TestMain.
var skiffBin string

func TestMain(m *testing.M) {
	skiffBin = os.Getenv("SKIFF_BIN")
	var tmp string
	if skiffBin == "" {
		var err error
		tmp, err = os.MkdirTemp("", "skiff-e2e-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		skiffBin = filepath.Join(tmp, "skiff")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", skiffBin, "./cmd/skiff")
		cmd.Dir = root
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build skiff:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if tmp != "" {
		os.RemoveAll(tmp)
	}
	os.Exit(code)
}

// cluster is one running `skiff server` process.
type cluster struct {
	t          *testing.T
	DataDir    string
	Port       int
	Kubeconfig string
	args       []string
	cmd        *exec.Cmd
	log        *bytes.Buffer
	exited     chan struct{}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startCluster starts `skiff server` on a free port with a fresh data dir
// and waits until it is ready. It is stopped when the test ends.
func startCluster(t *testing.T, extra ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, DataDir: t.TempDir(), Port: freePort(t)}
	c.Kubeconfig = filepath.Join(c.DataDir, "admin.kubeconfig")
	c.args = append([]string{"server", "--data-dir", c.DataDir, "--secure-port", strconv.Itoa(c.Port), "--disable-agent"}, extra...)
	c.start()
	t.Cleanup(c.stop)
	return c
}

// startNodeCluster starts `skiff server` with its node agent (a private
// containerd running real pods) on a free port and waits until this
// machine's node is Ready. When the test ends the server is stopped and
// `skiff agent --cleanup` removes its containerd, pods, the proxy's rules,
// the bridge and the cgroups, and the test fails if any proxy rule is left. Only one such cluster runs at a time: the
// kubelet API listens on :10250.
func startNodeCluster(t *testing.T, extra ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, DataDir: t.TempDir(), Port: freePort(t)}
	c.Kubeconfig = filepath.Join(c.DataDir, "admin.kubeconfig")
	c.args = append([]string{"server", "--data-dir", c.DataDir, "--secure-port", strconv.Itoa(c.Port)}, extra...)
	t.Cleanup(func() {
		c.stop()
		if out, err := exec.Command(skiffBin, "agent", "--cleanup", "--data-dir", c.DataDir).CombinedOutput(); err != nil {
			t.Errorf("skiff agent --cleanup: %v\n%s", err, out)
		}
		// The kube-proxy add-on's rules must be gone with the node.
		if out, _ := exec.Command("iptables-save").Output(); strings.Contains(string(out), "KUBE-") {
			t.Errorf("iptables rules left after cleanup:\n%s", grepLines(string(out), "KUBE-"))
		}
		if out, _ := exec.Command("nft", "list", "tables").Output(); strings.Contains(string(out), "kube-proxy") {
			t.Errorf("nft table left after cleanup:\n%s", out)
		}
	})
	c.start()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, _, err := c.kubectlVersion("kubectl", "", "get", "nodes", "--no-headers")
		if err == nil && strings.Contains(out, " Ready ") {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("node not Ready after 60s (is another kubelet on :10250?); server log:\n%s", c.log.String())
		}
	}
}

func (c *cluster) start() {
	c.t.Helper()
	c.log = &bytes.Buffer{}
	c.cmd = exec.Command(skiffBin, c.args...)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		c.t.Fatalf("start skiff server: %v", err)
	}
	c.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(c.cmd, c.exited)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-c.exited:
			c.t.Fatalf("skiff server exited early:\n%s", c.log.String())
		default:
		}
		if _, err := os.Stat(c.Kubeconfig); err == nil {
			out, err := exec.Command("kubectl", "--kubeconfig", c.Kubeconfig, "get", "--raw", "/readyz").CombinedOutput()
			if err == nil && strings.TrimSpace(string(out)) == "ok" {
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("skiff server not ready after 60s:\n%s", c.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit (SIGKILL after 20 s).
func (c *cluster) stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.exited
		c.t.Errorf("skiff server did not stop within 20s of SIGTERM:\n%s", c.log.String())
	}
}

// restart stops the server and starts it again on the same data dir.
func (c *cluster) restart() {
	c.t.Helper()
	c.stop()
	if c.cmd.ProcessState != nil && !c.cmd.ProcessState.Success() {
		c.t.Fatalf("skiff server exited with %v on SIGTERM:\n%s", c.cmd.ProcessState, c.log.String())
	}
	c.start()
}

// kubectl runs the given kubectl binary ("kubectl", "kubectl.1.27", ...)
// against the cluster and returns stdout, stderr and the error.
func (c *cluster) kubectlVersion(bin string, stdin string, args ...string) (string, string, error) {
	c.t.Helper()
	path := bin
	if bin != "kubectl" {
		path = filepath.Join(kubectlDir(c.t), bin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// kubectl runs the default kubectl and fails the test on error.
func (c *cluster) kubectl(args ...string) string {
	c.t.Helper()
	out, errOut, err := c.kubectlVersion("kubectl", "", args...)
	if err != nil {
		c.t.Fatalf("kubectl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// kubectlIn is kubectl with stdin.
func (c *cluster) kubectlIn(stdin string, args ...string) string {
	c.t.Helper()
	out, errOut, err := c.kubectlVersion("kubectl", stdin, args...)
	if err != nil {
		c.t.Fatalf("kubectl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// kubectlFail runs kubectl expecting failure and returns stderr.
func (c *cluster) kubectlFail(stdin string, args ...string) string {
	c.t.Helper()
	out, errOut, err := c.kubectlVersion("kubectl", stdin, args...)
	if err == nil {
		c.t.Fatalf("kubectl %s succeeded, want failure; stdout: %s", strings.Join(args, " "), out)
	}
	return errOut
}

func kubectlDir(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl not on PATH: %v", err)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(real)
}

// client returns a client-go clientset for the cluster.
func (c *cluster) client() kubernetes.Interface {
	c.t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		c.t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	return cs
}

// eventually polls cond until it returns true or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kubectlVersionCtx runs the default kubectl until ctx is done.
func (c *cluster) kubectlVersionCtx(ctx context.Context, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}
