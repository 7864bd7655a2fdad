package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-project/skiff/pkg/apiserver/apiservertest"
	"github.com/skiff-project/skiff/pkg/containerd/containerdtest"
	"github.com/skiff-project/skiff/pkg/images"
)

// dockerRegistry is Debian's docker-registry (distribution 2.8).
const dockerRegistry = "/usr/bin/docker-registry"

// testRegistry is a docker-registry serving on 127.0.0.1 with basic auth.
type testRegistry struct {
	host       string // 127.0.0.1:<port>
	user, pass string
}

// startRegistry runs docker-registry on a free loopback port with an
// htpasswd (bcrypt) user and storage in a temporary directory, until the
// test ends. Basic auth over plain HTTP works with this registry (it only
// logs that htpasswd should be used with TLS), and containerd speaks plain
// HTTP to loopback registries on its own, so no TLS is needed.
func startRegistry(t *testing.T) *testRegistry {
	t.Helper()
	dir := t.TempDir()
	reg := &testRegistry{user: "skiff", pass: "pw-" + containerdtest.RandomHex(t, 6)}
	hash, err := bcrypt.GenerateFromPassword([]byte(reg.pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(reg.user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A port that was free a moment ago; the registry fails to start
	// (and the wait below reports it) in the unlikely case it is taken.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg.host = ln.Addr().String()
	ln.Close()
	config := fmt.Sprintf(`version: 0.1
log: { level: warn }
storage:
  filesystem: { rootdirectory: %s }
http:
  addr: %s
auth:
  htpasswd:
    realm: skiff-test
    path: %s
`, filepath.Join(dir, "data"), reg.host, filepath.Join(dir, "htpasswd"))
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(dockerRegistry, "serve", filepath.Join(dir, "config.yml"))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting docker-registry: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("docker-registry log:\n%s", logs.String())
		}
	})
	waitFor(t, 10*time.Second, "docker-registry answering", func() (string, bool) {
		select {
		case <-exited:
			t.Fatalf("docker-registry exited: %s", logs.String())
		default:
		}
		resp, err := http.Get("http://" + reg.host + "/v2/")
		if err != nil {
			return err.Error(), false
		}
		resp.Body.Close()
		return resp.Status, resp.StatusCode == http.StatusUnauthorized
	})
	return reg
}

// push uploads img as repo:tag with the OCI distribution API (monolithic
// blob uploads, then the manifest), authenticating with basic auth.
// go-containerregistry's remote.Write would do it, but its package pulls
// in modules go.mod does not list.
func (reg *testRegistry) push(repo, tag string, img v1.Image) error {
	do := func(method, url, contentType string, body []byte, want int) (*http.Response, error) {
		if !strings.HasPrefix(url, "http") {
			url = "http://" + reg.host + url
		}
		req, err := http.NewRequest(method, url, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.SetBasicAuth(reg.user, reg.pass)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			return nil, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, msg)
		}
		return resp, nil
	}
	upload := func(digest v1.Hash, data []byte) error {
		resp, err := do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", "", nil, http.StatusAccepted)
		if err != nil {
			return err
		}
		loc, sep := resp.Header.Get("Location"), "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		_, err = do(http.MethodPut, loc+sep+"digest="+digest.String(), "application/octet-stream", data, http.StatusCreated)
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		digest, err := l.Digest()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		if err := upload(digest, data); err != nil {
			return err
		}
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	configName, err := img.ConfigName()
	if err != nil {
		return err
	}
	if err := upload(configName, config); err != nil {
		return err
	}
	mediaType, err := img.MediaType()
	if err != nil {
		return err
	}
	manifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	_, err = do(http.MethodPut, "/v2/"+repo+"/manifests/"+tag, string(mediaType), manifest, http.StatusCreated)
	return err
}

// TestAgentPullsFromRegistry runs pods whose image lives in a registry
// that requires a login, on a real agent and containerd: without a pull
// secret the pull fails (ErrImagePull, then ImagePullBackOff, with
// upstream's Failed event); with a kubernetes.io/dockerconfigjson secret
// it is pulled (Pulling, Pulled "Successfully pulled image ...") and runs;
// a second pod with IfNotPresent finds it "already present", while a pod
// without the secret may not use the present image; Never with a missing
// image gives ErrImageNeverPull. It also checks the hosts.toml the agent
// writes for --insecure-registry.
func TestAgentPullsFromRegistry(t *testing.T) {
	skipUnlessNode(t)
	if _, err := os.Stat(dockerRegistry); err != nil {
		t.Skipf("docker-registry not installed (run hack/setup.sh): %v", err)
	}
	reg := startRegistry(t)
	ctx := context.Background()

	// An image of its own (a unique file), so the pull really fetches
	// its layer.
	suffix := containerdtest.RandomHex(t, 3)
	spec, err := images.BusyboxSpec(ctx, DefaultBusybox)
	if err != nil {
		t.Fatal(err)
	}
	spec.Ref = reg.host + "/skiff-test/app:1"
	spec.Files = append(spec.Files, images.File{Path: "/etc/skiff-test", Data: []byte(suffix)})
	img, _, err := images.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.push("skiff-test/app", "1", img); err != nil {
		t.Fatalf("pushing the image: %v", err)
	}
	image := spec.Ref

	srv := apiservertest.Start(t)
	client := srv.Client
	cfg := testNodeConfig(t, srv.Config, "registry-test", "skr")
	cfg.InsecureRegistries = []string{"registry.invalid:5000"}
	cleanupNode(t, cfg)
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	startAgent(t, cfg)
	node := waitFor(t, 2*time.Minute, "node registered", func() (*corev1.Node, bool) {
		n, err := client.CoreV1().Nodes().Get(ctx, cfg.NodeName, metav1.GetOptions{})
		return n, err == nil
	})
	cidr := containerdtest.FreeCIDR(t, 214).String()
	node.Spec.PodCIDR, node.Spec.PodCIDRs = cidr, []string{cidr}
	if _, err := client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("setting podCIDR: %v", err)
	}

	hostsToml, err := os.ReadFile(filepath.Join(PathsFor(cfg.DataDir).Containerd, "certs.d", "registry.invalid:5000", "hosts.toml"))
	if err != nil || !strings.Contains(string(hostsToml), `server = "http://registry.invalid:5000"`) {
		t.Errorf("hosts.toml of the insecure registry: %v\n%s", err, hostsToml)
	}

	// 1. No secret: the registry refuses, the kubelet backs off.
	createImagePod(t, client, cfg.NodeName, "no-secret", image, corev1.PullIfNotPresent)
	waitFor(t, time.Minute, "no-secret in ImagePullBackOff", func() (string, bool) {
		return waitingReason(client, "no-secret"), waitingReason(client, "no-secret") == "ImagePullBackOff"
	})
	failed := waitEvent(t, client, "no-secret", "Failed", `^Failed to pull image "`+regexp.QuoteMeta(image)+`": .*401 Unauthorized`)
	t.Logf("without a secret: %s", failed)
	waitEvent(t, client, "no-secret", "Failed", `^Error: ErrImagePull$`)
	waitEvent(t, client, "no-secret", "BackOff", `^Back-off pulling image "`+regexp.QuoteMeta(image)+`"$`)
	waitEvent(t, client, "no-secret", "Failed", `^Error: ImagePullBackOff$`)

	// 2. With a dockerconfigjson secret: pulled and running.
	dockerConfig, err := json.Marshal(map[string]any{"auths": map[string]any{reg.host: map[string]string{"username": reg.user, "password": reg.pass}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "regcred"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createImagePod(t, client, cfg.NodeName, "with-secret", image, corev1.PullIfNotPresent, "regcred")
	waitRunning(t, client, "with-secret")
	waitEvent(t, client, "with-secret", "Pulling", `^Pulling image "`+regexp.QuoteMeta(image)+`"$`)
	pulled := waitEvent(t, client, "with-secret", "Pulled",
		`^Successfully pulled image "`+regexp.QuoteMeta(image)+`" in [0-9.]+m?s \([0-9.]+m?s including waiting\)\. Image size: [1-9][0-9]* bytes\.$`)
	t.Logf("with the secret: %s", pulled)

	// 3. IfNotPresent again, with the secret: no pull.
	createImagePod(t, client, cfg.NodeName, "second", image, corev1.PullIfNotPresent, "regcred")
	waitRunning(t, client, "second")
	waitEvent(t, client, "second", "Pulled", `^Container image "`+regexp.QuoteMeta(image)+`" already present on machine`)
	if ev := podEvents(client, "second", "Pulling"); len(ev) > 0 {
		t.Errorf("the second pod pulled again: %q", ev)
	}

	// 4. The image is present, but a pod without the secret may not use
	// it: it has to pull, and the registry refuses.
	createImagePod(t, client, cfg.NodeName, "present-no-secret", image, corev1.PullIfNotPresent)
	waitFor(t, time.Minute, "present-no-secret failing to pull", func() (string, bool) {
		r := waitingReason(client, "present-no-secret")
		return r, r == "ErrImagePull" || r == "ImagePullBackOff"
	})

	// 5. Never, with an image nobody has.
	missing := reg.host + "/skiff-test/absent:1"
	createImagePod(t, client, cfg.NodeName, "never", missing, corev1.PullNever)
	waitFor(t, time.Minute, "never in ErrImageNeverPull", func() (string, bool) {
		return waitingReason(client, "never"), waitingReason(client, "never") == "ErrImageNeverPull"
	})
	waitEvent(t, client, "never", "ErrImageNeverPull", `^Container image "`+regexp.QuoteMeta(missing)+`" is not present with pull policy of Never$`)

	for _, name := range []string{"no-secret", "with-secret", "second", "present-no-secret", "never"} {
		if err := client.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(1))}); err != nil {
			t.Error(err)
		}
	}
	for _, name := range []string{"no-secret", "with-secret", "second", "present-no-secret", "never"} {
		waitFor(t, time.Minute, name+" deleted", func() (bool, bool) {
			_, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
			return true, apierrors.IsNotFound(err)
		})
	}
}

// createImagePod creates a pod on node running image's sleep, with the
// given pull policy and pull secrets.
func createImagePod(t *testing.T, client kubernetes.Interface, node, name, image string, policy corev1.PullPolicy, secrets ...string) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: new(int64(1)),
			Containers: []corev1.Container{{
				Name: "main", Image: image, ImagePullPolicy: policy,
				Command: []string{"sleep", "3600"},
			}},
		},
	}
	for _, s := range secrets {
		pod.Spec.ImagePullSecrets = append(pod.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
	}
	if _, err := client.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating pod %s: %v", name, err)
	}
}

// waitingReason is the waiting reason of the pod's container, or "".
func waitingReason(client kubernetes.Interface, name string) string {
	p, err := client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil || len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Waiting == nil {
		return ""
	}
	return p.Status.ContainerStatuses[0].State.Waiting.Reason
}

func waitRunning(t *testing.T, client kubernetes.Interface, name string) {
	t.Helper()
	waitFor(t, time.Minute, name+" Running", func() (string, bool) {
		p, err := client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err.Error(), false
		}
		return string(p.Status.Phase) + " " + waitingReason(client, name), p.Status.Phase == corev1.PodRunning
	})
}

// podEvents returns the messages of the pod's events with reason.
func podEvents(client kubernetes.Interface, pod, reason string) []string {
	list, err := client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod})
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range list.Items {
		if e.Reason == reason && e.Source.Component == "kubelet" {
			out = append(out, e.Message)
		}
	}
	return out
}

// waitEvent waits for a kubelet event of the pod with reason and a message
// matching pattern, and returns the message.
func waitEvent(t *testing.T, client kubernetes.Interface, pod, reason, pattern string) string {
	t.Helper()
	re := regexp.MustCompile(pattern)
	return waitFor(t, 30*time.Second, fmt.Sprintf("event %s %q of %s", reason, pattern, pod), func() ([]string, bool) {
		msgs := podEvents(client, pod, reason)
		for _, m := range msgs {
			if re.MatchString(m) {
				return []string{m}, true
			}
		}
		return msgs, false
	})[0]
}

func TestWriteInsecureRegistries(t *testing.T) {
	dir := t.TempDir()
	if err := writeInsecureRegistries(dir, []string{"10.0.0.5:5000", "registry.lan"}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "10.0.0.5:5000", "hosts.toml"))
	if err != nil {
		t.Fatal(err)
	}
	want := "# Written by skiff for --insecure-registry 10.0.0.5:5000: plain HTTP.\n" +
		"server = \"http://10.0.0.5:5000\"\n" +
		"[host.\"http://10.0.0.5:5000\"]\n" +
		"  capabilities = [\"pull\", \"resolve\"]\n"
	if string(got) != want {
		t.Errorf("hosts.toml:\n%s\nwant:\n%s", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "registry.lan", "hosts.toml")); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"", "http://r:5000", "r:5000/path", "r:0", "r:x", ":5000"} {
		if err := writeInsecureRegistries(t.TempDir(), []string{bad}); err == nil {
			t.Errorf("insecure registry %q accepted", bad)
		}
	}
}
