package e2e

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestServicesEndToEnd runs the seed's Service walkthrough on a real node:
// the kube-proxy DaemonSet and the coredns Deployment come up in
// kube-system from the image Skiff builds from its own binary, and a
// Service's ClusterIP and NodePort reach its ready pods from the host and
// from pods, by IP and by DNS name.
func TestServicesEndToEnd(t *testing.T) {
	c := startNodeCluster(t)

	// The add-ons, as the seed shows them.
	c.kubectl("-n", "kube-system", "rollout", "status", "daemonset/kube-proxy", "--timeout=120s")
	c.kubectl("-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=120s")
	if out := c.kubectl("get", "daemonset", "-n", "kube-system", "--no-headers"); !regexp.MustCompile(`kube-proxy\s+1\s+1\s+1\s+1\s+1\s`).MatchString(out) {
		t.Errorf("kubectl get daemonset -n kube-system:\n%s", out)
	}
	if out := c.kubectl("get", "pods", "-n", "kube-system", "--no-headers"); len(regexp.MustCompile(`(?m)^coredns-\S+\s+1/1\s+Running`).FindAllString(out, -1)) != 2 ||
		!regexp.MustCompile(`(?m)^kube-proxy-\S+\s+1/1\s+Running`).MatchString(out) {
		t.Errorf("kubectl get pods -n kube-system:\n%s", out)
	}
	if out := c.kubectl("cluster-info"); !strings.Contains(out, "CoreDNS is running at https://127.0.0.1:"+itoa(c.Port)+"/api/v1/namespaces/kube-system/services/kube-dns:dns/proxy") {
		t.Errorf("kubectl cluster-info:\n%s", out)
	}

	c.kubectl("create", "deployment", "web", "--image=nginx:1.25", "--replicas=2")
	if out := c.kubectl("expose", "deployment", "web", "--port=80"); strings.TrimSpace(out) != "service/web exposed" {
		t.Errorf("kubectl expose: %q", out)
	}
	c.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
	ip := c.kubectl("get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}")

	// The seed's check on the node: kube-proxy's rule for the Service.
	eventually(t, 30*time.Second, "the Service in `iptables -t nat -L KUBE-SERVICES`", func() bool {
		out, err := exec.Command("iptables", "-t", "nat", "-L", "KUBE-SERVICES", "-n").Output()
		return err == nil && strings.Contains(grepLines(string(out), "web"), ip)
	})

	// From the host: requests spread over both pods.
	hosts := map[string]bool{}
	served := regexp.MustCompile(`Served by Skiff's test image on (\S+)\.`)
	eventually(t, 30*time.Second, "requests to the ClusterIP from the host to reach both pods", func() bool {
		body, err := exec.Command("curl", "-s", "-m", "2", "http://"+ip+"/").Output()
		if m := served.FindStringSubmatch(string(body)); err == nil && m != nil {
			hosts[m[1]] = true
		}
		return len(hosts) == 2
	})

	// From a pod, by IP and by name; the pod's resolver is the cluster DNS.
	c.kubectl("run", "client", "--image=busybox:1.36", "--", "sleep", "3600")
	c.kubectl("wait", "--for=condition=Ready", "pod/client", "--timeout=60s")
	if out := c.kubectl("exec", "client", "--", "cat", "/etc/resolv.conf"); !strings.Contains(out, "nameserver 10.96.0.10") || !strings.Contains(out, "search default.svc.cluster.local svc.cluster.local cluster.local") {
		t.Errorf("pod resolv.conf:\n%s", out)
	}
	for _, target := range []string{ip, "web", "web.default.svc.cluster.local"} {
		eventually(t, 30*time.Second, "the pod to reach http://"+target+"/", func() bool {
			out, _, err := c.kubectlVersion("kubectl", "", "exec", "client", "--", "wget", "-qO-", "http://"+target+"/")
			return err == nil && strings.Contains(out, "Welcome to nginx!")
		})
	}
	// From the host by name, asking the cluster DNS.
	out, err := exec.Command("busybox", "nslookup", "web.default.svc.cluster.local", "10.96.0.10").CombinedOutput()
	if err != nil || !strings.Contains(string(out), ip) {
		t.Errorf("nslookup web.default.svc.cluster.local 10.96.0.10 from the host: %v\n%s", err, out)
	}

	// NodePort on the node's IP.
	c.kubectl("expose", "deployment", "web", "--name=web-np", "--type=NodePort", "--port=80")
	nodeIP := c.kubectl("get", "nodes", "-o", `jsonpath={.items[0].status.addresses[?(@.type=="InternalIP")].address}`)
	nodePort := c.kubectl("get", "svc", "web-np", "-o", "jsonpath={.spec.ports[0].nodePort}")
	eventually(t, 30*time.Second, "the NodePort to answer", func() bool {
		body, err := exec.Command("curl", "-s", "-m", "2", "http://"+nodeIP+":"+nodePort+"/").Output()
		return err == nil && strings.Contains(string(body), "Welcome to nginx!")
	})

	// A pod that fails readiness gets no traffic, though it matches.
	c.kubectlIn(`apiVersion: v1
kind: Pod
metadata: {name: unready, labels: {app: web}}
spec:
  containers:
  - name: web
    image: nginx:1.25
    readinessProbe:
      exec: {command: ["/nonexistent"]}
      periodSeconds: 1
`, "apply", "-f", "-")
	eventually(t, 30*time.Second, "the unready pod to run", func() bool {
		out, _, _ := c.kubectlVersion("kubectl", "", "get", "pod", "unready", "-o", "jsonpath={.status.phase}")
		return out == "Running"
	})
	for range 30 {
		body, _ := exec.Command("curl", "-s", "-m", "2", "http://"+ip+"/").Output()
		if strings.Contains(string(body), "on unready.") {
			t.Fatal("the unready pod received traffic through the Service")
		}
	}

	// Hairpin: a backend reaching its own Service.
	c.kubectlIn(`apiVersion: v1
kind: Pod
metadata: {name: self, labels: {app: self}}
spec:
  containers:
  - name: httpd
    image: busybox:1.36
    command: ["sh", "-c", "mkdir -p /www && echo hairpin-ok > /www/index.html && exec httpd -f -p 8080 -h /www"]
---
apiVersion: v1
kind: Service
metadata: {name: self}
spec:
  selector: {app: self}
  ports: [{port: 80, targetPort: 8080}]
`, "apply", "-f", "-")
	c.kubectl("wait", "--for=condition=Ready", "pod/self", "--timeout=60s")
	eventually(t, 30*time.Second, "the pod to reach itself through its Service", func() bool {
		out, _, err := c.kubectlVersion("kubectl", "", "exec", "self", "--", "wget", "-qO-", "http://self/")
		return err == nil && strings.Contains(out, "hairpin-ok")
	})

	// Scaled to zero, the Service refuses connections at once.
	c.kubectl("delete", "pod", "unready", "--grace-period=0", "--force")
	c.kubectl("scale", "deployment", "web", "--replicas=0")
	eventually(t, 30*time.Second, "connections to the empty Service to be refused", func() bool {
		err := exec.Command("curl", "-s", "-m", "2", "http://"+ip+"/").Run()
		// curl exit code 7: failed to connect (refused), not 28 (timeout).
		ee, ok := err.(*exec.ExitError)
		return ok && ee.ExitCode() == 7
	})

	// A deleted Service's rules are gone.
	c.kubectl("delete", "svc", "web", "web-np")
	eventually(t, 30*time.Second, "the deleted Service's rules to go", func() bool {
		out, err := exec.Command("iptables-save", "-t", "nat").Output()
		return err == nil && !strings.Contains(string(out), ip) && !strings.Contains(string(out), "default/web")
	})
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestServicesNFTablesMode runs the kube-proxy add-on in nftables mode
// (`skiff server --proxy-mode nftables`): a ClusterIP reaches its pod (the
// echo server test image) through the proxy's own nft table, an empty
// Service refuses at once, and the table goes with the node.
func TestServicesNFTablesMode(t *testing.T) {
	c := startNodeCluster(t, "--proxy-mode=nftables", "--disable=coredns")
	c.kubectl("-n", "kube-system", "rollout", "status", "daemonset/kube-proxy", "--timeout=120s")
	// The echo server test image tells which pod answered and what arrived.
	c.kubectl("create", "deployment", "echo", "--image=skiff.local/echo:1.0")
	c.kubectl("expose", "deployment", "echo", "--port=80", "--target-port=8080")
	c.kubectl("rollout", "status", "deployment/echo", "--timeout=60s")
	ip := c.kubectl("get", "svc", "echo", "-o", "jsonpath={.spec.clusterIP}")
	eventually(t, 30*time.Second, "the ClusterIP to answer through nftables", func() bool {
		body, err := exec.Command("curl", "-s", "-m", "2", "http://"+ip+"/hello?x=1").Output()
		return err == nil && regexp.MustCompile(`"hostname": "echo-[a-z0-9]+-[a-z0-9]+"`).Match(body) &&
			strings.Contains(string(body), `"path": "/hello"`) && strings.Contains(string(body), `"query": "x=1"`)
	})
	if out, err := exec.Command("nft", "list", "table", "ip", "kube-proxy").CombinedOutput(); err != nil || !strings.Contains(string(out), ip) {
		t.Errorf("nft list table ip kube-proxy: %v\n%s", err, out)
	}
	if out, _ := exec.Command("iptables-save", "-t", "nat").Output(); strings.Contains(string(out), "KUBE-SERVICES") {
		t.Errorf("iptables chains in nftables mode:\n%s", grepLines(string(out), "KUBE-"))
	}
	c.kubectl("scale", "deployment", "echo", "--replicas=0")
	eventually(t, 30*time.Second, "connections to the empty Service to be refused", func() bool {
		err := exec.Command("curl", "-s", "-m", "2", "http://"+ip+"/").Run()
		ee, ok := err.(*exec.ExitError)
		return ok && ee.ExitCode() == 7
	})
}
