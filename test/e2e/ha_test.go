package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-project/skiff/pkg/storage/storagetest"
)

// startEtcd runs an external etcd process (the project's test/etcd, built
// from go.etcd.io/etcd) on free loopback ports with a temporary data dir and
// returns its client URL. It is stopped when the test ends.
func startEtcd(t *testing.T) string {
	t.Helper()
	bin := storagetest.BuildEtcd(t, t.TempDir())
	client := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	log := &bytes.Buffer{}
	cmd := exec.Command(bin, "--data-dir", t.TempDir(), "--name", "e2e",
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "e2e="+peer, "--log-level", "error")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	eventually(t, 20*time.Second, "etcd healthy", func() bool {
		out, err := exec.Command("curl", "-sf", client+"/health").Output()
		return err == nil && strings.Contains(string(out), "true")
	})
	return client
}

// TestTwoServersOnExternalEtcd runs two `skiff server`s on one external etcd
// cluster: both serve the same data, exactly one controller manager leads,
// and when the leader stops the other takes over and keeps reconciling.
func TestTwoServersOnExternalEtcd(t *testing.T) {
	etcd := startEtcd(t)
	holder := func(c *cluster) string {
		out, _, _ := c.kubectlVersion("kubectl", "", "get", "lease", "-n", "kube-system", "kube-controller-manager", "-o", "jsonpath={.spec.holderIdentity}")
		return out
	}
	// The first server takes the leases before the second one starts, so
	// stopping it below is a real failover.
	first := startCluster(t, "--etcd-servers", etcd)
	eventually(t, 20*time.Second, "the first server to lead", func() bool { return holder(first) != "" })
	leader := holder(first)
	second := startCluster(t, "--etcd-servers", etcd)
	// The nodes talk to the server that survives.
	second.startSim(t, "n", 2, "--heartbeat-interval=2s")

	first.kubectl("create", "deployment", "ha", "--image=nginx:1.25", "--replicas=2")
	eventually(t, 30*time.Second, "pods Running, seen through the second server", func() bool {
		out, _, _ := second.kubectlVersion("kubectl", "", "get", "pods", "-l", "app=ha", "--no-headers")
		return strings.Count(out, "Running") == 2
	})
	if h := holder(second); h != leader {
		t.Fatalf("lease holder seen through the second server is %q, want %q", h, leader)
	}
	first.stop()
	eventually(t, 40*time.Second, "the second server to take over", func() bool {
		h := holder(second)
		return h != "" && h != leader
	})
	second.kubectl("scale", "deployment", "ha", "--replicas=3")
	eventually(t, 30*time.Second, "3 pods after scaling through the surviving server", func() bool {
		out, _, _ := second.kubectlVersion("kubectl", "", "get", "pods", "-l", "app=ha", "--no-headers")
		return strings.Count(out, "Running") == 3
	})
}
