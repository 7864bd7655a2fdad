package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// tokenKubeconfig writes a kubeconfig for c's API server that
// authenticates with token alone (no client certificate) and returns its
// path.
func (c *cluster) tokenKubeconfig(t *testing.T, token string) string {
	t.Helper()
	admin, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	var server clientcmdapi.Cluster
	for _, cl := range admin.Clusters {
		server = *cl
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["skiff"] = &server
	cfg.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["sa"] = &clientcmdapi.Context{Cluster: "skiff", AuthInfo: "sa", Namespace: "default"}
	cfg.CurrentContext = "sa"
	path := filepath.Join(t.TempDir(), "sa.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// kubectlAs runs kubectl with kubeconfig and returns stdout, stderr, error.
func kubectlAs(t *testing.T, kubeconfig string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// jwtClaims decodes a JWT's payload without verifying it.
func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestAuthServiceAccountsAndRBAC drives ServiceAccount tokens and RBAC with
// the real kubectl: create token, whoami with it, a 403 with upstream's
// message, can-i --as before and after a RoleBinding, and the pieces
// every pod gets (the kube-api-access volume, kube-root-ca.crt).
func TestAuthServiceAccountsAndRBAC(t *testing.T) {
	c := startCluster(t)
	eventually(t, 30*time.Second, "the default ServiceAccount", func() bool {
		_, _, err := c.kubectlVersion("kubectl", "", "get", "serviceaccount", "default")
		return err == nil
	})

	token := strings.TrimSpace(c.kubectl("create", "token", "default"))
	claims := jwtClaims(t, token)
	if claims["sub"] != "system:serviceaccount:default:default" || claims["iss"] != "https://kubernetes.default.svc.cluster.local" {
		t.Errorf("token claims = %v", claims)
	}
	if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != 3600 {
		t.Errorf("token lifetime = %v s, want 3600", exp-iat)
	}
	sa := c.tokenKubeconfig(t, token)
	out, stderr, err := kubectlAs(t, sa, "auth", "whoami")
	if err != nil || !strings.Contains(out, "system:serviceaccount:default:default") ||
		!strings.Contains(out, "[system:serviceaccounts system:serviceaccounts:default system:authenticated]") {
		t.Errorf("kubectl auth whoami with the token: %v\n%s%s", err, out, stderr)
	}
	_, stderr, err = kubectlAs(t, sa, "get", "pods")
	want := `Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:default:default" cannot list resource "pods" in API group "" in the namespace "default"`
	if err == nil || !strings.Contains(stderr, want) {
		t.Errorf("kubectl get pods as the service account: %v\n%s\nwant %s", err, stderr, want)
	}

	canI := func() (string, error) {
		out, _, err := c.kubectlVersion("kubectl", "", "auth", "can-i", "list", "pods", "--as=system:serviceaccount:default:default")
		return strings.TrimSpace(out), err
	}
	if got, err := canI(); got != "no" || err == nil {
		t.Errorf("can-i before the RoleBinding = %q, %v; want no (exit 1)", got, err)
	}
	c.kubectl("create", "rolebinding", "sa-view", "--clusterrole=view", "--serviceaccount=default:default")
	eventually(t, 10*time.Second, "can-i to say yes after the RoleBinding", func() bool {
		got, err := canI()
		return got == "yes" && err == nil
	})
	if out, stderr, err := kubectlAs(t, sa, "get", "pods"); err != nil {
		t.Errorf("kubectl get pods with view: %v\n%s%s", err, out, stderr)
	}
	if out, _, _ := c.kubectlVersion("kubectl", "", "auth", "can-i", "create", "deployments", "--as=system:serviceaccount:default:default"); strings.TrimSpace(out) != "no" {
		t.Errorf("view may create deployments: %q", out)
	}

	errOut := c.kubectlFail("", "create", "token", "default", "--duration=5m")
	if !strings.Contains(errOut, "may not specify a duration less than 10 minutes") {
		t.Errorf("create token --duration=5m: %s", errOut)
	}
	errOut = c.kubectlFail("", "create", "token", "nope")
	if !strings.Contains(errOut, `serviceaccounts "nope" not found`) {
		t.Errorf("create token for a missing account: %s", errOut)
	}

	// Every namespace gets the CA, and every pod the API access volume.
	admin, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	var ca string
	for _, cl := range admin.Clusters {
		ca = string(cl.CertificateAuthorityData)
	}
	c.kubectl("create", "namespace", "fresh")
	eventually(t, 20*time.Second, "kube-root-ca.crt in a new namespace", func() bool {
		out, _, err := c.kubectlVersion("kubectl", "", "get", "configmap", "kube-root-ca.crt", "-n", "fresh", "-o", "jsonpath={.data.ca\\.crt}")
		return err == nil && out == ca && ca != ""
	})
	// The default ServiceAccount of "fresh" may not exist yet: admission
	// waits for it, as upstream.
	c.kubectl("run", "web", "-n", "fresh", "--image=nginx:1.25")
	vol := c.kubectl("get", "pod", "web", "-n", "fresh", "-o", "jsonpath={.spec.volumes[0].name} {.spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds} {.spec.containers[0].volumeMounts[0].mountPath} {.spec.serviceAccountName}")
	fields := strings.Fields(vol)
	if len(fields) != 4 || !strings.HasPrefix(fields[0], "kube-api-access-") || fields[1] != "3607" ||
		fields[2] != "/var/run/secrets/kubernetes.io/serviceaccount" || fields[3] != "default" {
		t.Errorf("pod volume = %q", vol)
	}
	// The add-ons' identities are bootstrapped.
	for _, args := range [][]string{
		{"get", "serviceaccount", "-n", "kube-system", "coredns", "kube-proxy"},
		{"get", "clusterrole", "cluster-admin", "admin", "edit", "view", "system:coredns", "system:node-proxier", "system:discovery", "system:basic-user", "system:public-info-viewer"},
		{"get", "clusterrolebinding", "cluster-admin", "system:coredns", "system:node-proxier", "system:public-info-viewer"},
	} {
		c.kubectl(args...)
	}
	if out, _, _ := c.kubectlVersion("kubectl", "", "auth", "can-i", "watch", "endpointslices.discovery.k8s.io", "--as=system:serviceaccount:kube-system:coredns"); strings.TrimSpace(out) != "yes" {
		t.Errorf("coredns may not watch endpointslices: %q", out)
	}
}

// TestAuthAlwaysAllowMode checks --authorization-mode: AlwaysAllow lets any
// authenticated identity do anything.
func TestAuthAlwaysAllowMode(t *testing.T) {
	c := startCluster(t, "--authorization-mode=AlwaysAllow")
	eventually(t, 30*time.Second, "the default ServiceAccount", func() bool {
		_, _, err := c.kubectlVersion("kubectl", "", "get", "serviceaccount", "default")
		return err == nil
	})
	sa := c.tokenKubeconfig(t, strings.TrimSpace(c.kubectl("create", "token", "default")))
	if out, stderr, err := kubectlAs(t, sa, "get", "secrets", "-A"); err != nil {
		t.Errorf("kubectl get secrets -A as the service account with AlwaysAllow: %v\n%s%s", err, out, stderr)
	}
}

// TestAuthPodTokenProjection runs a real pod on the node agent and uses
// the token the kubelet projected into it: it authenticates as the pod's
// ServiceAccount, bound to the pod, next to the cluster CA and the
// namespace, and stops working once the pod is deleted.
func TestAuthPodTokenProjection(t *testing.T) {
	c := startNodeCluster(t, "--disable=coredns,kube-proxy")
	eventually(t, 30*time.Second, "the default ServiceAccount", func() bool {
		_, _, err := c.kubectlVersion("kubectl", "", "get", "serviceaccount", "default")
		return err == nil
	})
	c.kubectl("run", "tok", "--image=busybox:1.36", "--", "sleep", "3600")
	c.kubectl("wait", "--for=condition=Ready", "pod/tok", "--timeout=60s")
	const dir = "/var/run/secrets/kubernetes.io/serviceaccount/"
	token := c.kubectl("exec", "tok", "--", "cat", dir+"token")
	if ns := c.kubectl("exec", "tok", "--", "cat", dir+"namespace"); ns != "default" {
		t.Errorf("namespace file = %q", ns)
	}
	admin, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range admin.Clusters {
		if ca := c.kubectl("exec", "tok", "--", "cat", dir+"ca.crt"); ca != string(cl.CertificateAuthorityData) {
			t.Errorf("ca.crt in the pod is not the cluster CA:\n%s", ca)
		}
	}
	claims := jwtClaims(t, token)
	if k, _ := claims["kubernetes.io"].(map[string]any); k == nil || k["pod"] == nil || k["node"] == nil {
		t.Errorf("projected token is not bound to the pod and its node: %v", claims)
	}
	sa := c.tokenKubeconfig(t, token)
	out, stderr, err := kubectlAs(t, sa, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.extra.authentication\\.kubernetes\\.io/pod-name[0]}")
	if err != nil || out != "system:serviceaccount:default:default tok" {
		t.Errorf("whoami with the pod's token = %q, %v\n%s", out, err, stderr)
	}
	c.kubectl("delete", "pod", "tok", "--grace-period=1")
	eventually(t, 30*time.Second, "the pod's token to stop working", func() bool {
		_, stderr, err := kubectlAs(t, sa, "auth", "whoami")
		return err != nil && strings.Contains(stderr, "Unauthorized")
	})
}
