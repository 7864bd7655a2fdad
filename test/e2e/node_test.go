package e2e

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestRealPodOnContainerd runs the seed's `kubectl run scheduler-test
// --image=nginx:1.25` on a `skiff server` with its node agent: a private
// containerd, real runc containers and a CNI bridge. It checks the events in
// order, logs, exec, and traffic to the pod from the host and from another
// pod. The agent's containerd, bridge and cgroups are removed at the end.
func TestRealPodOnContainerd(t *testing.T) {
	c := startNodeCluster(t)
	if out := c.kubectl("get", "nodes", "-o", "wide"); !strings.Contains(out, "containerd://") {
		t.Fatalf("node does not report containerd:\n%s", out)
	}

	c.kubectl("run", "scheduler-test", "--image=nginx:1.25")
	c.kubectl("wait", "--for=condition=Ready", "pod/scheduler-test", "--timeout=60s")
	out := c.kubectl("describe", "pod", "scheduler-test")
	if !regexp.MustCompile(`(?s)Scheduled.*default-scheduler\s+Successfully assigned default/scheduler-test to .*Pulled.*kubelet.*Created.*kubelet.*Started.*kubelet`).MatchString(out) {
		t.Fatalf("events not Scheduled, Pulled, Created, Started in order:\n%s", out)
	}
	ip := c.kubectl("get", "pod", "scheduler-test", "-o", "jsonpath={.status.podIP}")
	body, err := exec.Command("curl", "-s", "-m", "5", "http://"+ip+"/").Output()
	if err != nil || !strings.Contains(string(body), "Welcome to nginx!") {
		t.Fatalf("curl http://%s/ from the host: %v %q", ip, err, body)
	}
	eventually(t, 10*time.Second, "the request in the pod's log", func() bool {
		logs, _, _ := c.kubectlVersion("kubectl", "", "logs", "scheduler-test")
		return strings.Contains(logs, `"GET / HTTP/1.1" 200`)
	})

	c.kubectl("run", "client", "--image=busybox:1.36", "--", "sleep", "3600")
	c.kubectl("wait", "--for=condition=Ready", "pod/client", "--timeout=60s")
	if got := strings.TrimSpace(c.kubectl("exec", "client", "--", "hostname")); got != "client" {
		t.Fatalf("exec hostname = %q", got)
	}
	if got := c.kubectlIn("hello from stdin", "exec", "-i", "client", "--", "cat"); got != "hello from stdin" {
		t.Fatalf("exec -i cat = %q", got)
	}
	if got := c.kubectl("exec", "client", "--", "wget", "-qO-", "http://"+ip+"/"); !strings.Contains(got, "Welcome to nginx!") {
		t.Fatalf("pod to pod: %q", got)
	}
	// A failing liveness probe restarts the container (upstream's
	// liveness example, shortened); a failing readiness probe keeps a pod
	// out of Ready until it passes.
	c.kubectlIn(`apiVersion: v1
kind: Pod
metadata: {name: live}
spec:
  containers:
  - name: c
    image: busybox:1.36
    command: ["sh", "-c", "touch /tmp/healthy; sleep 2; rm -f /tmp/healthy; sleep 3600"]
    livenessProbe:
      exec: {command: ["cat", "/tmp/healthy"]}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata: {name: ready}
spec:
  containers:
  - name: c
    image: busybox:1.36
    command: ["sleep", "3600"]
    readinessProbe:
      exec: {command: ["test", "-e", "/tmp/ready"]}
      periodSeconds: 1
`, "apply", "-f", "-")
	eventually(t, 60*time.Second, "the liveness probe to restart the container", func() bool {
		out, _, _ := c.kubectlVersion("kubectl", "", "get", "pod", "live", "-o", "jsonpath={.status.containerStatuses[0].restartCount}")
		return out != "" && out != "0"
	})
	if out := c.kubectl("get", "events", "--field-selector", "involvedObject.name=live"); !strings.Contains(out, "Unhealthy") || !strings.Contains(out, "Liveness probe failed") {
		t.Fatalf("no Unhealthy liveness event:\n%s", out)
	}
	eventually(t, 30*time.Second, "the readiness pod to run", func() bool {
		out, _, _ := c.kubectlVersion("kubectl", "", "get", "pod", "ready", "-o", "jsonpath={.status.phase}")
		return out == "Running"
	})
	eventually(t, 30*time.Second, "a failed readiness probe", func() bool {
		out, _, _ := c.kubectlVersion("kubectl", "", "get", "events", "--field-selector", "involvedObject.name=ready")
		return strings.Contains(out, "Readiness probe failed")
	})
	if out := c.kubectl("get", "pod", "ready", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`); out != "False" {
		t.Fatalf("pod with a failing readiness probe is Ready=%q", out)
	}
	c.kubectl("exec", "ready", "--", "touch", "/tmp/ready")
	c.kubectl("wait", "--for=condition=Ready", "pod/ready", "--timeout=30s")

	checkStreaming(t, c, "scheduler-test", "client")
	checkFailureModes(t, c)
	checkConfigMapVolumeUpdate(t, c)
	checkGracefulDelete(t, c)
	checkRestartKeepsContainers(t, c, "scheduler-test")

	c.kubectl("delete", "pod", "client", "scheduler-test", "live", "ready", "reader", "--grace-period=1")
	eventually(t, 30*time.Second, "pods gone", func() bool {
		out, _, _ := c.kubectlVersion("kubectl", "", "get", "pods", "--no-headers")
		return strings.TrimSpace(out) == ""
	})
}
