package e2e

import (
	"bytes"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// simNodes runs `skiff sim` for the cluster; stop() ends it (its nodes stop
// heartbeating), and it is stopped when the test ends.
type simNodes struct {
	cmd    *exec.Cmd
	log    *bytes.Buffer
	exited chan struct{}
}

func (c *cluster) startSim(t *testing.T, prefix string, nodes int, extra ...string) *simNodes {
	t.Helper()
	s := &simNodes{log: &bytes.Buffer{}, exited: make(chan struct{})}
	args := append([]string{"sim", "--kubeconfig", c.Kubeconfig, "--nodes", itoa(nodes), "--name-prefix", prefix}, extra...)
	s.cmd = exec.Command(skiffBin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start skiff sim: %v", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(s.stop)
	eventually(t, 30*time.Second, prefix+" nodes Ready", func() bool {
		out, _, err := c.kubectlVersion("kubectl", "", "get", "nodes", "--no-headers")
		return err == nil && strings.Count(out, prefix+"-") == nodes && strings.Count(out, " Ready ") >= nodes
	})
	return s
}

func (s *simNodes) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestWholeChainReacts is the seed's "watch the entire chain react"
// exercise, on a server plus simulated nodes, driven by the real kubectl.
func TestWholeChainReacts(t *testing.T) {
	// Short heartbeats and grace periods keep the node-failure part quick;
	// the grace period must exceed the heartbeat interval, as upstream.
	c := startCluster(t, "--node-monitor-grace-period=5s", "--default-unreachable-toleration-seconds=2", "--default-not-ready-toleration-seconds=2")
	c.startSim(t, "a", 2, "--heartbeat-interval=1s")
	b := c.startSim(t, "b", 1, "--heartbeat-interval=1s")

	c.kubectl("create", "deployment", "demo", "--image=nginx:1.25", "--replicas=3")
	running := func(n int) func() bool {
		return func() bool {
			out, _, err := c.kubectlVersion("kubectl", "", "get", "pods", "-l", "app=demo", "--no-headers")
			return err == nil && strings.Count(out, "Running") == n && len(strings.Split(strings.TrimSpace(out), "\n")) == n
		}
	}
	eventually(t, 30*time.Second, "3 demo pods Running", running(3))
	out := c.kubectl("get", "replicasets", "-l", "app=demo")
	if !regexp.MustCompile(`(?m)^demo-[a-z0-9]+\s+3\s+3\s+3\s+`).MatchString(out) {
		t.Fatalf("replicaset:\n%s", out)
	}
	events := c.kubectl("get", "events", "--sort-by=.metadata.creationTimestamp")
	for _, want := range []string{"ScalingReplicaSet", "Scaled up replica set demo-", "SuccessfulCreate", "Created pod: demo-",
		"Scheduled", "Successfully assigned default/demo-", "Started"} {
		if !strings.Contains(events, want) {
			t.Errorf("events lack %q:\n%s", want, events)
		}
	}

	// Delete a pod: the ReplicaSet controller replaces it.
	first := strings.TrimSpace(c.kubectl("get", "pods", "-l", "app=demo", "-o", "name"))
	victim := strings.Split(first, "\n")[0]
	c.kubectl("delete", victim)
	eventually(t, 30*time.Second, "replacement pod", func() bool {
		out, _, _ := c.kubectlVersion("kubectl", "", "get", "pods", "-l", "app=demo", "-o", "name")
		return !strings.Contains(out, victim) && running(3)()
	})

	// Scale down and back up.
	c.kubectl("scale", "deployment", "demo", "--replicas=1")
	eventually(t, 30*time.Second, "1 pod", running(1))
	c.kubectl("scale", "deployment", "demo", "--replicas=3")
	eventually(t, 30*time.Second, "3 pods again", running(3))

	// Change the image: a new ReplicaSet; undo goes back to the old one.
	oldRS := strings.TrimSpace(c.kubectl("get", "rs", "-l", "app=demo", "-o", "jsonpath={.items[0].metadata.name}"))
	c.kubectl("set", "image", "deployment/demo", "nginx=nginx:1.26")
	c.kubectl("rollout", "status", "deployment/demo", "--timeout=60s")
	if out := c.kubectl("get", "deployment", "demo", "-o", "jsonpath={.spec.template.spec.containers[0].image}"); out != "nginx:1.26" {
		t.Fatalf("image after set image: %q", out)
	}
	if n := len(strings.Fields(c.kubectl("get", "rs", "-l", "app=demo", "-o", "name"))); n != 2 {
		t.Fatalf("want 2 replicasets after the rollout, got %d", n)
	}
	c.kubectl("rollout", "undo", "deployment/demo")
	c.kubectl("rollout", "status", "deployment/demo", "--timeout=60s")
	if out := c.kubectl("get", "rs", oldRS, "-o", "jsonpath={.spec.replicas}"); out != "3" {
		t.Fatalf("after undo the original replicaset %s has %q replicas", oldRS, out)
	}

	// A pod that fits no node stays Pending with upstream's message.
	c.kubectlIn(`apiVersion: v1
kind: Pod
metadata: {name: huge}
spec:
  containers:
  - name: c
    image: nginx:1.25
    resources: {requests: {cpu: "100"}}
`, "apply", "-f", "-")
	eventually(t, 30*time.Second, "FailedScheduling event", func() bool {
		out, _, _ := c.kubectlVersion("kubectl", "", "describe", "pod", "huge")
		return strings.Contains(out, "FailedScheduling") && strings.Contains(out, "0/3 nodes are available: 3 Insufficient cpu.")
	})
	if out := c.kubectl("get", "pod", "huge", "-o", "jsonpath={.status.phase} {.status.conditions[0].reason}"); out != "Pending Unschedulable" {
		t.Fatalf("huge pod: %q", out)
	}
	c.kubectl("delete", "pod", "huge")

	// Stop node b-0: it turns NotReady and its pods are recreated
	// elsewhere. As upstream, the evicted pod itself stays Terminating on the
	// unreachable node (nobody can confirm its containers stopped).
	runningElsewhere := func() int {
		out, _, _ := c.kubectlVersion("kubectl", "", "get", "pods", "-l", "app=demo", "-o", "wide", "--no-headers")
		n := 0
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, " Running ") && !strings.Contains(line, " b-0 ") {
				n++
			}
		}
		return n
	}
	b.stop()
	eventually(t, 30*time.Second, "b-0 NotReady", func() bool {
		out, _, _ := c.kubectlVersion("kubectl", "", "get", "node", "b-0", "--no-headers")
		return strings.Contains(out, "NotReady")
	})
	eventually(t, 60*time.Second, "3 pods Running on the other nodes", func() bool { return runningElsewhere() == 3 })
	if out := c.kubectl("get", "events", "--field-selector", "reason=TaintManagerEviction"); !strings.Contains(out, "Marking for deletion Pod default/demo-") {
		t.Fatalf("no TaintManagerEviction event:\n%s", out)
	}

	// Deleting the deployment removes its ReplicaSets and pods.
	c.kubectl("delete", "deployment", "demo")
	eventually(t, 30*time.Second, "replicasets and pods gone", func() bool {
		rs, _, _ := c.kubectlVersion("kubectl", "", "get", "rs,pods", "-l", "app=demo", "-o", "wide", "--no-headers")
		// Only the pod stranded on the dead node may remain, Terminating.
		for _, line := range strings.Split(strings.TrimSpace(rs), "\n") {
			if line != "" && !strings.Contains(line, " b-0 ") {
				return false
			}
		}
		return true
	})
}

func TestJobRunsToCompletion(t *testing.T) {
	c := startCluster(t)
	c.startSim(t, "n", 1, "--job-duration=1s")
	c.kubectl("create", "job", "hello", "--image=busybox:1.36", "--", "echo", "hi")
	c.kubectl("wait", "--for=condition=complete", "job/hello", "--timeout=60s")
	out := c.kubectl("get", "job", "hello")
	if !regexp.MustCompile(`hello\s+Complete\s+1/1`).MatchString(out) {
		t.Fatalf("job:\n%s", out)
	}
}

func TestDaemonSetAndStatefulSet(t *testing.T) {
	c := startCluster(t)
	c.startSim(t, "d", 3)
	c.kubectlIn(`apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: a, image: busybox:1.36}]}
`, "apply", "-f", "-")
	eventually(t, 60*time.Second, "one agent pod per node", func() bool {
		out, _, _ := c.kubectlVersion("kubectl", "", "get", "pods", "-l", "app=agent", "-o", "wide", "--no-headers")
		return strings.Count(out, "Running") == 3 && strings.Contains(out, " d-0 ") && strings.Contains(out, " d-1 ") && strings.Contains(out, " d-2 ")
	})
	c.kubectlIn(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 3
  selector: {matchLabels: {app: sts}}
  template:
    metadata: {labels: {app: sts}}
    spec: {containers: [{name: w, image: nginx:1.25}]}
`, "apply", "-f", "-")
	eventually(t, 60*time.Second, "web-0, web-1, web-2 Running", func() bool {
		out, _, _ := c.kubectlVersion("kubectl", "", "get", "pods", "-l", "app=sts", "--no-headers")
		return strings.Count(out, "Running") == 3 && strings.Contains(out, "web-0 ") && strings.Contains(out, "web-1 ") && strings.Contains(out, "web-2 ")
	})
}
