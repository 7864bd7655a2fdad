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
	c := &cluster{t: t, DataDir: t.TempDir(), Port: freePort(t)}
	c.Kubeconfig = c.DataDir + "/admin.kubeconfig"
	c.args = []string{"server", "--data-dir", c.DataDir, "--secure-port", itoa(c.Port)}
	t.Cleanup(func() {
		c.stop()
		if out, err := exec.Command(skiffBin, "agent", "--cleanup", "--data-dir", c.DataDir).CombinedOutput(); err != nil {
			t.Errorf("skiff agent --cleanup: %v\n%s", err, out)
		}
	})
	c.start()
	eventually(t, 60*time.Second, "the node to be Ready", func() bool {
		out, _, err := c.kubectlVersion("kubectl", "", "get", "nodes", "--no-headers")
		return err == nil && strings.Contains(out, " Ready ")
	})
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
	c.kubectl("delete", "pod", "client", "scheduler-test", "--grace-period=1")
	eventually(t, 30*time.Second, "pods gone", func() bool {
		out, _, _ := c.kubectlVersion("kubectl", "", "get", "pods", "--no-headers")
		return strings.TrimSpace(out) == ""
	})
}
