package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// checkStreaming shows `kubectl port-forward` carrying curl's request to
// the pod, and `kubectl cp` copying a file into a pod and back out.
func checkStreaming(t *testing.T, c *cluster, webPod, shellPod string) {
	t.Helper()
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pf := exec.CommandContext(ctx, "kubectl", "--kubeconfig", c.Kubeconfig, "port-forward", "pod/"+webPod, strconv.Itoa(port)+":80")
	stdout, err := pf.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := pf.Start(); err != nil {
		t.Fatalf("kubectl port-forward: %v", err)
	}
	defer func() { cancel(); _ = pf.Wait() }()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "Forwarding from 127.0.0.1:") {
				ready <- sc.Text()
			}
		}
		close(ready)
	}()
	select {
	case line, ok := <-ready:
		if !ok {
			t.Fatal("kubectl port-forward exited before forwarding")
		}
		t.Logf("port-forward: %s", line)
	case <-time.After(30 * time.Second):
		t.Fatal("kubectl port-forward printed no Forwarding line within 30s")
	}
	body, err := exec.Command("curl", "-s", "-m", "5", "http://127.0.0.1:"+strconv.Itoa(port)+"/").Output()
	if err != nil || !strings.Contains(string(body), "Welcome to nginx!") {
		t.Fatalf("curl through kubectl port-forward: %v %q", err, body)
	}

	dir := t.TempDir()
	src := filepath.Join(dir, "in.txt")
	if err := os.WriteFile(src, []byte("copied by kubectl cp\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.kubectl("cp", src, shellPod+":/tmp/in.txt")
	if got := c.kubectl("exec", shellPod, "--", "cat", "/tmp/in.txt"); got != "copied by kubectl cp\n" {
		t.Fatalf("file copied into the pod reads %q", got)
	}
	c.kubectl("exec", shellPod, "--", "sh", "-c", "echo made in the pod > /tmp/out.txt")
	dst := filepath.Join(dir, "out.txt")
	c.kubectl("cp", shellPod+":/tmp/out.txt", dst)
	if b, err := os.ReadFile(dst); err != nil || string(b) != "made in the pod\n" {
		t.Fatalf("file copied out of the pod: %v %q", err, b)
	}
}

// checkFailureModes shows a container over its memory limit reported as
// OOMKilled, a crashing command in CrashLoopBackOff, and a Job whose pod
// exits 0 completing.
func checkFailureModes(t *testing.T, c *cluster) {
	t.Helper()
	c.kubectlIn(`apiVersion: v1
kind: Pod
metadata: {name: oom}
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: busybox:1.36
    # A shell variable of 200 MB in a 32 MiB container.
    command: ["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"]
    resources:
      limits: {memory: 32Mi}
`, "apply", "-f", "-")
	c.kubectl("run", "crash", "--image=busybox:1.36", "--", "sh", "-c", "echo failing; exit 3")
	c.kubectl("create", "job", "hello", "--image=busybox:1.36", "--", "sh", "-c", "echo job done")

	eventually(t, 60*time.Second, "the memory hog to be OOMKilled", func() bool {
		out, _, _ := c.kubectlVersion("kubectl", "", "get", "pod", "oom", "-o", "jsonpath={.status.containerStatuses[0].state.terminated.reason}")
		return out == "OOMKilled"
	})
	if out := c.kubectl("get", "pod", "oom", "-o", "jsonpath={.status.phase} {.status.containerStatuses[0].state.terminated.exitCode}"); out != "Failed 137" {
		t.Errorf("OOMKilled pod: phase and exit code %q, want \"Failed 137\"", out)
	}

	eventually(t, 90*time.Second, "CrashLoopBackOff for the crashing pod", func() bool {
		out, _, _ := c.kubectlVersion("kubectl", "", "get", "pod", "crash", "--no-headers")
		return strings.Contains(out, "CrashLoopBackOff")
	})
	if out := c.kubectl("get", "events", "--field-selector", "involvedObject.name=crash"); !strings.Contains(out, "BackOff") || !strings.Contains(out, "Back-off restarting failed container") {
		t.Errorf("no BackOff event for the crashing pod:\n%s", out)
	}
	if out := c.kubectl("logs", "crash", "--previous"); !strings.Contains(out, "failing") {
		t.Errorf("kubectl logs --previous of the crashing pod: %q", out)
	}

	c.kubectl("wait", "--for=condition=Complete", "job/hello", "--timeout=60s")
	if out := c.kubectl("get", "job", "hello", "--no-headers"); !strings.Contains(out, "Complete") || !strings.Contains(out, "1/1") {
		t.Errorf("kubectl get job: %q", out)
	}
	if out := c.kubectl("logs", "job/hello"); out != "job done\n" {
		t.Errorf("job log %q", out)
	}
	if out := c.kubectl("get", "pods", "-l", "job-name=hello", "-o", "jsonpath={.items[0].status.phase} {.items[0].status.containerStatuses[0].state.terminated.exitCode}"); out != "Succeeded 0" {
		t.Errorf("job pod: %q, want \"Succeeded 0\"", out)
	}
	c.kubectl("delete", "pod", "oom", "crash", "--grace-period=0", "--force")
	c.kubectl("delete", "job", "hello")
}

// checkConfigMapVolumeUpdate shows an update of a ConfigMap reaching the
// file of a pod that mounts it, without a restart.
func checkConfigMapVolumeUpdate(t *testing.T, c *cluster) {
	t.Helper()
	c.kubectl("create", "configmap", "settings", "--from-literal=mode=slow")
	c.kubectlIn(`apiVersion: v1
kind: Pod
metadata: {name: reader}
spec:
  containers:
  - name: c
    image: busybox:1.36
    command: ["sleep", "3600"]
    volumeMounts: [{name: cfg, mountPath: /etc/settings}]
  volumes:
  - name: cfg
    configMap: {name: settings}
`, "apply", "-f", "-")
	c.kubectl("wait", "--for=condition=Ready", "pod/reader", "--timeout=60s")
	if got := c.kubectl("exec", "reader", "--", "cat", "/etc/settings/mode"); got != "slow" {
		t.Fatalf("mounted configMap reads %q", got)
	}
	c.kubectlIn(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"settings"},"data":{"mode":"fast"}}`, "apply", "-f", "-")
	eventually(t, 90*time.Second, "the configMap update to reach the mounted file", func() bool {
		out, _, _ := c.kubectlVersion("kubectl", "", "exec", "reader", "--", "cat", "/etc/settings/mode")
		return out == "fast"
	})
	if n := c.kubectl("get", "pod", "reader", "-o", "jsonpath={.status.containerStatuses[0].restartCount}"); n != "0" {
		t.Errorf("the pod restarted (%s) for a configMap update", n)
	}
}

// checkGracefulDelete shows a deleted pod's container getting SIGTERM
// (its trap runs) and the pod going away once it stopped, well within its
// grace period.
func checkGracefulDelete(t *testing.T, c *cluster) {
	t.Helper()
	c.kubectl("run", "graceful", "--image=busybox:1.36", "--", "sh", "-c",
		`trap 'echo got TERM > /dev/termination-log; exit 0' TERM; while true; do sleep 0.2; done`)
	c.kubectl("wait", "--for=condition=Ready", "pod/graceful", "--timeout=60s")
	c.kubectl("delete", "pod", "graceful", "--grace-period=20", "--wait=false")
	eventually(t, 30*time.Second, "the deleted pod to be gone", func() bool {
		_, stderr, err := c.kubectlVersion("kubectl", "", "get", "pod", "graceful")
		return err != nil && strings.Contains(stderr, "NotFound")
	})
}

// checkRestartKeepsContainers restarts `skiff server` (and with it the
// node agent) and shows the pod's container still running under the same
// ID, never restarted.
func checkRestartKeepsContainers(t *testing.T, c *cluster, pod string) {
	t.Helper()
	before := c.kubectl("get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].containerID}")
	if !strings.HasPrefix(before, "containerd://") {
		t.Fatalf("containerID %q", before)
	}
	c.restart()
	eventually(t, 60*time.Second, "the node to be Ready again", func() bool {
		out, _, err := c.kubectlVersion("kubectl", "", "get", "nodes", "--no-headers")
		return err == nil && strings.Contains(out, " Ready ")
	})
	c.kubectl("wait", "--for=condition=Ready", "pod/"+pod, "--timeout=60s")
	after := c.kubectl("get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount}")
	if after != before+" 0" {
		t.Fatalf("after the restart the container is %q, want %q (same ID, never restarted)", after, before+" 0")
	}
}
