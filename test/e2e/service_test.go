package e2e

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// TestServiceAllocation drives Service ClusterIP and NodePort allocation
// with the real kubectl: expose, create service, the upstream columns and
// refusals, and allocations that survive a restart.
func TestServiceAllocation(t *testing.T) {
	c := startCluster(t)
	serviceRange := netip.MustParsePrefix("10.96.0.0/12")

	c.kubectl("create", "deployment", "web", "--image=nginx:1.25", "--replicas=2")
	if out := c.kubectl("expose", "deployment", "web", "--port=80"); out != "service/web exposed\n" {
		t.Fatalf("kubectl expose printed %q, want %q", out, "service/web exposed\n")
	}
	lines := strings.Split(strings.TrimSpace(c.kubectl("get", "svc", "web")), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE" {
		t.Fatalf("kubectl get svc web:\n%s\nwant the upstream columns NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE", strings.Join(lines, "\n"))
	}
	row := strings.Fields(lines[1])
	if len(row) != 6 || row[0] != "web" || row[1] != "ClusterIP" || row[3] != "<none>" || row[4] != "80/TCP" {
		t.Fatalf("kubectl get svc web row %q, want web ClusterIP <ip> <none> 80/TCP <age>", lines[1])
	}
	webIP, err := netip.ParseAddr(row[2])
	if err != nil || !serviceRange.Contains(webIP) {
		t.Fatalf("web's CLUSTER-IP %q is not in %s", row[2], serviceRange)
	}

	if out := c.kubectl("create", "service", "nodeport", "np", "--tcp=80:8080"); out != "service/np created\n" {
		t.Fatalf("kubectl create service nodeport printed %q", out)
	}
	nodePort, err := strconv.Atoi(c.kubectl("get", "svc", "np", "-o", "jsonpath={.spec.ports[0].nodePort}"))
	if err != nil || nodePort < 30000 || nodePort > 32767 {
		t.Fatalf("np's node port %d (%v): want one in 30000-32767", nodePort, err)
	}
	all := c.kubectl("get", "svc")
	if !strings.Contains(all, "80:"+strconv.Itoa(nodePort)+"/TCP") {
		t.Fatalf("kubectl get svc does not show np's port as 80:%d/TCP:\n%s", nodePort, all)
	}

	errOut := c.kubectlFail("", "create", "service", "nodeport", "np2", "--tcp=80:8080", "--node-port="+strconv.Itoa(nodePort))
	wantPort := `Service "np2" is invalid: spec.ports[0].nodePort: Invalid value: ` + strconv.Itoa(nodePort) + `: provided port is already allocated`
	if !strings.Contains(errOut, wantPort) {
		t.Fatalf("duplicate node port: kubectl said %q, want %q", errOut, wantPort)
	}
	errOut = c.kubectlFail("", "create", "service", "nodeport", "np3", "--tcp=80:8080", "--node-port=8080")
	if !strings.Contains(errOut, "provided port is not in the valid range. The range of valid ports is 30000-32767") {
		t.Fatalf("out-of-range node port: kubectl said %q", errOut)
	}

	c.kubectl("create", "service", "clusterip", "static", "--clusterip=10.96.0.42", "--tcp=53:53")
	errOut = c.kubectlFail("", "create", "service", "clusterip", "static2", "--clusterip=10.96.0.42", "--tcp=53:53")
	if !strings.Contains(errOut, "failed to allocate IP 10.96.0.42: provided IP is already allocated") {
		t.Fatalf("duplicate clusterIP: kubectl said %q", errOut)
	}
	errOut = c.kubectlFail("", "create", "service", "clusterip", "outside", "--clusterip=192.168.0.1", "--tcp=53:53")
	if !strings.Contains(errOut, "provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12") {
		t.Fatalf("clusterIP outside the range: kubectl said %q", errOut)
	}
	c.kubectl("create", "service", "clusterip", "headless", "--clusterip=None")
	if ip := c.kubectl("get", "svc", "headless", "-o", "jsonpath={.spec.clusterIP}"); ip != "None" {
		t.Fatalf("headless clusterIP %q, want None", ip)
	}

	// The allocations live in etcd: after a restart the same requests are
	// still refused, and new Services get addresses nobody has.
	c.restart()
	errOut = c.kubectlFail("", "create", "service", "nodeport", "np2", "--tcp=80:8080", "--node-port="+strconv.Itoa(nodePort))
	if !strings.Contains(errOut, "provided port is already allocated") {
		t.Fatalf("after restart, duplicate node port: kubectl said %q", errOut)
	}
	c.kubectl("create", "service", "clusterip", "after", "--tcp=80:80")
	ips := c.kubectl("get", "svc", "-A", "-o", "jsonpath={range .items[*]}{.spec.clusterIP}{\"\\n\"}{end}")
	seen := map[string]bool{}
	for _, ip := range strings.Fields(ips) {
		if ip != "None" && seen[ip] {
			t.Fatalf("clusterIP %s is held by two Services:\n%s", ip, ips)
		}
		seen[ip] = true
	}

	// Deleting a Service frees its node port for others.
	c.kubectl("delete", "svc", "np")
	if out := c.kubectl("create", "service", "nodeport", "np2", "--tcp=80:8080", "--node-port="+strconv.Itoa(nodePort)); out != "service/np2 created\n" {
		t.Fatalf("reusing a deleted Service's node port printed %q", out)
	}
}
