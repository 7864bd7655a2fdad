package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestTop runs `kubectl top node` and `kubectl top pod` against a `skiff
// server` with its node agent: the API server scrapes the real kubelet's
// /metrics/resource (containerd's CRI stats) and serves metrics.k8s.io,
// which kubectl finds through discovery and reads in protobuf.
func TestTop(t *testing.T) {
	c := startNodeCluster(t)
	if out := c.kubectl("api-resources", "--api-group=metrics.k8s.io", "--no-headers"); !regexp.MustCompile(`(?m)^nodes\s+metrics.k8s.io/v1beta1\s+false\s+NodeMetrics$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^pods\s+metrics.k8s.io/v1beta1\s+true\s+PodMetrics$`).MatchString(out) {
		t.Fatalf("api-resources --api-group=metrics.k8s.io:\n%s", out)
	}

	c.kubectl("run", "burn", "--image=busybox:1.36", "--", "sh", "-c", "while true; do :; done")
	c.kubectl("wait", "--for=condition=Ready", "pod/burn", "--timeout=60s")
	ready := time.Now()
	node := strings.TrimSpace(c.kubectl("get", "pod", "burn", "-o", "jsonpath={.spec.nodeName}"))

	// NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%)
	nodeRow := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(node) + `\s+(\d+)m\s+\d+%\s+(\d+)Mi\s+\d+%\s*$`)
	var out string
	eventually(t, 60*time.Second, "numeric `kubectl top node`", func() bool {
		o, _, err := c.kubectlVersion("kubectl", "", "top", "node")
		out = o
		return err == nil && nodeRow.MatchString(o)
	})
	t.Logf("`kubectl top node` numeric %v after the pod was Ready:\n%s", time.Since(ready).Round(100*time.Millisecond), out)
	if m := nodeRow.FindStringSubmatch(out); m[2] == "0" {
		t.Errorf("node uses no memory:\n%s", out)
	}
	// NAME CPU(cores) MEMORY(bytes)
	podRow := regexp.MustCompile(`(?m)^burn\s+(\d+)m\s+(\d+)Mi\s*$`)
	eventually(t, 60*time.Second, "numeric `kubectl top pod burn`", func() bool {
		o, _, err := c.kubectlVersion("kubectl", "", "top", "pod", "burn")
		out = o
		return err == nil && podRow.MatchString(o)
	})
	t.Logf("`kubectl top pod burn` numeric %v after the pod was Ready:\n%s", time.Since(ready).Round(100*time.Millisecond), out)
	// The busy loop keeps a good share of a CPU busy.
	eventually(t, 60*time.Second, "`kubectl top pod` to show the busy loop's CPU", func() bool {
		o, _, err := c.kubectlVersion("kubectl", "", "top", "pod", "--containers")
		out = o
		m := regexp.MustCompile(`(?m)^burn\s+burn\s+(\d+)m\s+\d+Mi\s*$`).FindStringSubmatch(o)
		return err == nil && m != nil && len(m[1]) >= 3 // ≥ 100m
	})
	if _, stderr, err := c.kubectlVersion("kubectl", "", "top", "pod", "nope"); err == nil || !strings.Contains(stderr, `pods "nope" not found`) {
		t.Errorf("kubectl top pod nope: %v %s", err, stderr)
	}
	c.kubectl("delete", "pod", "burn", "--grace-period=1")
}
