package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/skiff-project/skiff/pkg/containerd/containerdtest"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/skiff-project/skiff/pkg/apiserver/apiservertest"
	"github.com/skiff-project/skiff/pkg/containerd"
	"github.com/skiff-project/skiff/pkg/images"
	"github.com/skiff-project/skiff/pkg/kubelet"
	"github.com/skiff-project/skiff/pkg/kubelet/criruntime"
)

// testCA issues certificates for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func (ca *testCA) issue(t *testing.T, subject pkix.Name, server bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// startKubeletServer serves s on 127.0.0.1 until the test ends and
// returns its port.
func startKubeletServer(t *testing.T, s *Server) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// realEnv is a private containerd with pause and busybox imported and a
// criruntime over it.
type realEnv struct {
	conn    *containerd.Conn
	runtime *criruntime.Runtime
}

func newRealEnv(t *testing.T) *realEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs a private containerd with CNI networking")
	}
	for _, bin := range []string{"containerd", "ctr", "runc", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (run hack/setup.sh): %v", bin, err)
		}
	}
	for _, f := range []string{"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/portmap", "/bin/busybox"} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("%s missing (run hack/setup.sh): %v", f, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	suffix := hex.EncodeToString(b)
	dir := t.TempDir()
	cgroupRoot := "/skiff-kls-" + suffix
	t.Cleanup(func() {
		for _, ctrl := range []string{"cpu", "memory", "pids", "cpuset", "blkio", "hugetlb", "devices", "freezer", "net_cls", "perf_event", "systemd"} {
			removeCgroupTree(filepath.Join("/sys/fs/cgroup", ctrl, cgroupRoot))
		}
	})
	proc, err := containerd.Start(ctx, containerd.Config{
		Dir:              filepath.Join(dir, "ctrd"),
		PodCIDR:          containerdtest.FreeCIDR(t, 215).String(),
		BridgeName:       "skk" + suffix,
		NetworkName:      "skiff-kls-" + suffix,
		RestoreIPForward: true,
	})
	if err != nil {
		t.Fatalf("starting containerd: %v", err)
	}
	t.Cleanup(func() {
		if err := proc.Stop(); err != nil {
			t.Errorf("stopping containerd: %v", err)
		}
		if pids, _ := containerd.ShimPIDs(proc.Paths().Socket); len(pids) > 0 {
			t.Errorf("shims left running: %v", pids)
		}
	})
	conn, err := containerd.Connect(ctx, proc.Endpoint(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })

	imgDir := filepath.Join(dir, "images")
	if err := os.MkdirAll(imgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	pauseBin := filepath.Join(imgDir, "pause")
	if err := images.BuildGoBinary(ctx, "../../../test/images/pause", pauseBin); err != nil {
		t.Fatal(err)
	}
	bb, err := images.BusyboxSpec(ctx, "/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []images.Spec{images.PauseSpec(pauseBin), bb} {
		name := filepath.Join(imgDir, strings.NewReplacer("/", "_", ":", "_").Replace(spec.Ref)+".tar")
		if _, err := images.WriteTarball(name, spec); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := images.ImportDir(ctx, "", proc.Paths().Socket, imgDir); err != nil {
		t.Fatal(err)
	}
	rt, err := criruntime.New(criruntime.Config{
		Runtime: conn.Runtime, Images: conn.Images,
		PodLogsRoot: filepath.Join(dir, "pods"), CgroupRoot: cgroupRoot,
		NodeIPs: []string{"127.0.0.1"}, PollInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &realEnv{conn: conn, runtime: rt}
}

// removeCgroupTree removes a cgroup directory and its children, deepest
// first (cgroupfs directories are removed with rmdir).
func removeCgroupTree(dir string) {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = os.Remove(dirs[i])
	}
}

func streamPod() *corev1.Pod {
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: types.UID("uid-stream-web")},
		Spec: corev1.PodSpec{
			NodeName:                      "node1",
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{
				{
					Name: "web", Image: "docker.io/library/busybox:1.36", ImagePullPolicy: corev1.PullIfNotPresent,
					Command: []string{"sh", "-c", `echo hello-out; echo hello-err >&2; mkdir -p /www; echo ok-from-pod > /www/index.html; exec httpd -f -p 8080 -h /www`},
				},
				{
					Name: "ticker", Image: "docker.io/library/busybox:1.36", ImagePullPolicy: corev1.PullIfNotPresent,
					Command: []string{"sh", "-c", `i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done`},
				},
			},
		},
	}
}

// TestRealStreaming runs a pod on a private containerd and drives logs,
// exec (SPDY and WebSocket), attach and port-forward (SPDY and WebSocket
// tunnelling) through a real API server and this kubelet server, with
// client-go's executors as kubectl uses them.
func TestRealStreaming(t *testing.T) {
	env := newRealEnv(t)
	ctx := context.Background()
	pod := streamPod()
	env.runPod(t, pod, 2)

	ca := newTestCA(t)
	serving := ca.issue(t, pkix.Name{CommonName: "node1"}, true)
	ks, err := New(Config{Runtime: CRI{Runtime: env.conn.Runtime}, Certificate: &serving, ClientCAs: ca.pool, FollowPollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	port := startKubeletServer(t, ks)

	api := apiservertest.Start(t)
	client := api.Client
	apiClientCert := ca.issue(t, pkix.Name{CommonName: APIServerClientCN}, false)
	api.API.SetKubeletClient(&tls.Config{Certificates: []tls.Certificate{apiClientCert}, RootCAs: ca.pool})
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}}
	node, err = client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(port)
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	apiPod := pod.DeepCopy()
	apiPod.UID = ""
	created, err := client.CoreV1().Pods("default").Create(ctx, apiPod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No kubelet reports status here; kubectl port-forward wants Running.
	created.Status.Phase = corev1.PodRunning
	if _, err := client.CoreV1().Pods("default").UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("logs", func(t *testing.T) {
		b, err := client.CoreV1().Pods("default").GetLogs("web", &corev1.PodLogOptions{Container: "web"}).DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(b); !strings.Contains(got, "hello-out\n") || !strings.Contains(got, "hello-err\n") {
			t.Errorf("logs = %q, want hello-out and hello-err lines", got)
		}
		tail := int64(1)
		b, err = client.CoreV1().Pods("default").GetLogs("web", &corev1.PodLogOptions{Container: "ticker", TailLines: &tail, Timestamps: true}).DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b))
		if len(f) != 3 || f[1] != "tick" {
			t.Fatalf("tailLines=1 with timestamps = %q", b)
		}
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
			t.Errorf("timestamp %q: %v", f[0], err)
		}
		// Stream, as kubectl logs uses, decodes errors as Status objects.
		_, err = client.CoreV1().Pods("default").GetLogs("web", &corev1.PodLogOptions{}).Stream(ctx)
		if err == nil || !strings.Contains(err.Error(), "a container name must be specified for pod web, choose one of: [web ticker]") {
			t.Errorf("logs without a container of a two-container pod: %v", err)
		}
		_, err = client.CoreV1().Pods("default").GetLogs("web", &corev1.PodLogOptions{Container: "web", Previous: true}).Stream(ctx)
		if err == nil || !strings.Contains(err.Error(), "previous terminated container") {
			t.Errorf("previous logs of a never restarted container: %v", err)
		}
	})

	t.Run("logs follow", func(t *testing.T) {
		since := int64(1)
		fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		rc, err := client.CoreV1().Pods("default").GetLogs("web", &corev1.PodLogOptions{Container: "ticker", Follow: true, SinceSeconds: &since}).Stream(fctx)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		var got bytes.Buffer
		buf := make([]byte, 1024)
		for strings.Count(got.String(), "tick") < 8 {
			n, err := rc.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				t.Fatalf("follow read after %q: %v", got.String(), err)
			}
		}
	})

	t.Run("a pod without a node", func(t *testing.T) {
		p := streamPod()
		p.Name, p.UID, p.Spec.NodeName = "unbound", "", ""
		if _, err := client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err := client.CoreV1().Pods("default").GetLogs("unbound", &corev1.PodLogOptions{Container: "web"}).Stream(ctx)
		if err == nil || !strings.Contains(err.Error(), "pod unbound does not have a host assigned") {
			t.Errorf("logs of an unbound pod: %v", err)
		}
	})

	execURL := func(opts *corev1.PodExecOptions) *url.URL {
		return client.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("web").SubResource("exec").VersionedParams(opts, scheme.ParameterCodec).URL()
	}
	executors := map[string]func(u *url.URL) (remotecommand.Executor, error){
		"spdy": func(u *url.URL) (remotecommand.Executor, error) {
			return remotecommand.NewSPDYExecutor(api.Config, "POST", u)
		},
		"websocket": func(u *url.URL) (remotecommand.Executor, error) {
			return remotecommand.NewWebSocketExecutor(api.Config, "GET", u.String())
		},
	}
	for name, newExec := range executors {
		t.Run("exec over "+name, func(t *testing.T) {
			run := func(cmd []string, stdin string) (string, string, error) {
				opts := &corev1.PodExecOptions{Container: "web", Command: cmd, Stdout: true, Stderr: true, Stdin: stdin != ""}
				e, err := newExec(execURL(opts))
				if err != nil {
					t.Fatal(err)
				}
				var out, errOut bytes.Buffer
				so := remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut}
				if stdin != "" {
					so.Stdin = strings.NewReader(stdin)
				}
				sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				err = e.StreamWithContext(sctx, so)
				return out.String(), errOut.String(), err
			}
			if out, errOut, err := run([]string{"echo", "hi"}, ""); err != nil || out != "hi\n" || errOut != "" {
				t.Errorf("echo hi: stdout %q stderr %q err %v", out, errOut, err)
			}
			if out, _, err := run([]string{"cat"}, "from stdin\n"); err != nil || out != "from stdin\n" {
				t.Errorf("cat with stdin (needs stdin's half-close): stdout %q err %v", out, err)
			}
			// A terminal: the first size arrives before the command reads it.
			e, err := newExec(execURL(&corev1.PodExecOptions{Container: "web", Command: []string{"sh", "-c", "sleep 0.5; stty size"}, Stdout: true, TTY: true}))
			if err != nil {
				t.Fatal(err)
			}
			var tty bytes.Buffer
			sizes := &fixedSize{size: remotecommand.TerminalSize{Width: 100, Height: 30}, done: make(chan struct{})}
			defer close(sizes.done)
			if err := e.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &tty, Tty: true, TerminalSizeQueue: sizes}); err != nil || tty.String() != "30 100\r\n" {
				t.Errorf("stty size in a terminal: %q, %v", tty.String(), err)
			}
			_, errOut, err := run([]string{"sh", "-c", "echo oops >&2; exit 3"}, "")
			var exitErr utilexec.CodeExitError
			if !errors.As(err, &exitErr) || exitErr.Code != 3 || errOut != "oops\n" {
				t.Errorf("exit 3: stderr %q err %#v, want exit code 3", errOut, err)
			}
		})
	}

	t.Run("attach", func(t *testing.T) {
		u := client.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("web").SubResource("attach").
			VersionedParams(&corev1.PodAttachOptions{Container: "ticker", Stdout: true}, scheme.ParameterCodec).URL()
		for name, newExec := range executors {
			e, err := newExec(u)
			if err != nil {
				t.Fatal(err)
			}
			actx, cancel := context.WithCancel(ctx)
			w := &untilWriter{want: "tick", found: make(chan struct{})}
			done := make(chan error, 1)
			go func() { done <- e.StreamWithContext(actx, remotecommand.StreamOptions{Stdout: w}) }()
			select {
			case <-w.found:
			case err := <-done:
				t.Errorf("attach over %s ended before output: %v", name, err)
			case <-time.After(10 * time.Second):
				t.Errorf("attach over %s: no output", name)
			}
			cancel()
			<-done
		}
	})

	pfURL := client.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("web").SubResource("portforward").URL()
	t.Run("port-forward over spdy", func(t *testing.T) {
		rt, upgrader, err := spdy.RoundTripperFor(api.Config)
		if err != nil {
			t.Fatal(err)
		}
		dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, "POST", pfURL)
		checkPortForward(t, dialer)
	})
	t.Run("port-forward over websocket", func(t *testing.T) {
		dialer, err := portforward.NewSPDYOverWebsocketDialer(pfURL, api.Config)
		if err != nil {
			t.Fatal(err)
		}
		checkPortForward(t, dialer)
	})

	t.Run("kubectl", func(t *testing.T) {
		kubectl := os.Getenv("SKIFF_TEST_KUBECTL")
		if kubectl == "" {
			t.Skip("set SKIFF_TEST_KUBECTL to a kubectl command (e.g. \"skiff kubectl\") to drive it too")
		}
		checkKubectl(t, strings.Fields(kubectl), api)
	})

	t.Run("the kubelet refuses other clients", func(t *testing.T) {
		base := fmt.Sprintf("https://127.0.0.1:%d/containerLogs/default/web/web", port)
		for _, tc := range []struct {
			name string
			cert []tls.Certificate
			want int
		}{
			{"no client certificate", nil, http.StatusUnauthorized},
			{"a node's certificate", []tls.Certificate{ca.issue(t, pkix.Name{CommonName: "system:node:node1", Organization: []string{"system:nodes"}}, false)}, http.StatusForbidden},
			{"system:masters", []tls.Certificate{ca.issue(t, pkix.Name{CommonName: "admin", Organization: []string{MastersGroup}}, false)}, http.StatusOK},
		} {
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, Certificates: tc.cert}}, Timeout: 10 * time.Second}
			resp, err := hc.Get(base)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			hc.CloseIdleConnections()
			if resp.StatusCode != tc.want {
				t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.want)
			}
		}
	})
}

// checkPortForward forwards a local port to the pod's httpd and fetches
// its page through it, twice (two streams on one session).
func checkPortForward(t *testing.T, dialer httpstream.Dialer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	out, errOut := newSyncBuffer(), newSyncBuffer() // written by one goroutine per connection
	pf, err := portforward.NewOnAddressesWithContext(ctx, dialer, []string{"127.0.0.1"}, []string{"0:8080"}, ready, out, errOut)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pf.ForwardPorts() }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("port-forward did not stop")
		}
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("port-forward ended: %v (%s)", err, errOut.String())
	case <-time.After(20 * time.Second):
		t.Fatal("port-forward not ready")
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) != 1 {
		t.Fatalf("GetPorts = %v, %v", ports, err)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for range 2 {
		resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/", ports[0].Local))
		if err != nil {
			t.Fatalf("GET through the forward: %v (%s)", err, errOut.String())
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != "ok-from-pod\n" {
			t.Errorf("GET through the forward = %q, %v", b, err)
		}
	}
}

func allRunning(rs kubelet.PodRuntimeStatus, n int) bool {
	running := 0
	for _, c := range rs.Containers {
		if c.State.Running != nil {
			running++
		}
	}
	return running == n
}

// untilWriter closes found once want has been written to it.
type untilWriter struct {
	buf   bytes.Buffer
	want  string
	found chan struct{}
	done  bool
}

func (w *untilWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if !w.done && strings.Contains(w.buf.String(), w.want) {
		w.done = true
		close(w.found)
	}
	return len(p), nil
}

// fixedSize is a TerminalSizeQueue that reports one size, then none
// once done is closed.
type fixedSize struct {
	size remotecommand.TerminalSize
	sent bool
	done chan struct{}
}

func (f *fixedSize) Next() *remotecommand.TerminalSize {
	if f.sent {
		<-f.done
		return nil
	}
	f.sent = true
	return &f.size
}

// checkKubectl drives the real kubectl against the test API server: logs,
// exec over WebSocket and SPDY, cp and port-forward.
func checkKubectl(t *testing.T, kubectl []string, api *apiservertest.Server) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: %q}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: default}}]
current-context: c
`, api.HTTP.URL, apiservertest.AdminToken)
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	command := func(ctx context.Context, env []string, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, kubectl[0], append(append(append([]string(nil), kubectl[1:]...), "--kubeconfig", kubeconfig), args...)...)
		cmd.Env = append(os.Environ(), env...)
		return cmd
	}
	run := func(env []string, stdin string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := command(ctx, env, args...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, tc := range []struct {
		name, stdin string
		env, args   []string
		want        string
		wantErr     bool
	}{
		{name: "logs", args: []string{"logs", "web", "-c", "web"}, want: "hello-out\n"},
		{name: "logs tail", args: []string{"logs", "web", "-c", "ticker", "--tail=1", "--timestamps"}, want: " tick "},
		{name: "logs of an unbound pod", args: []string{"logs", "unbound", "-c", "web"}, want: "pod unbound does not have a host assigned", wantErr: true},
		{name: "exec (websocket)", args: []string{"exec", "web", "-c", "web", "--", "echo", "hi"}, want: "hi\n"},
		{name: "exec -i (websocket)", stdin: "typed\n", args: []string{"exec", "-i", "web", "-c", "web", "--", "cat"}, want: "typed\n"},
		{name: "exec -i (spdy)", env: []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false"}, stdin: "typed\n", args: []string{"exec", "-i", "web", "-c", "web", "--", "cat"}, want: "typed\n"},
		{name: "exec exit code", args: []string{"exec", "web", "-c", "web", "--", "sh", "-c", "exit 7"}, want: "command terminated with exit code 7", wantErr: true},
	} {
		out, err := run(tc.env, tc.stdin, tc.args...)
		if (err != nil) != tc.wantErr || !strings.Contains(out, tc.want) {
			t.Errorf("%s: kubectl %v = %q, %v; want %q (error %v)", tc.name, tc.args, out, err, tc.want, tc.wantErr)
		}
	}

	dir := t.TempDir()
	src, back := filepath.Join(dir, "src.txt"), filepath.Join(dir, "back.txt")
	if err := os.WriteFile(src, []byte("copied through exec and tar\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(nil, "", "cp", src, "web:/tmp/src.txt", "-c", "web"); err != nil {
		t.Fatalf("kubectl cp to the pod: %v: %s", err, out)
	}
	if out, err := run(nil, "", "cp", "web:/tmp/src.txt", back, "-c", "web"); err != nil {
		t.Fatalf("kubectl cp from the pod: %v: %s", err, out)
	}
	if b, err := os.ReadFile(back); err != nil || string(b) != "copied through exec and tar\n" {
		t.Errorf("kubectl cp round trip = %q, %v", b, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pf := command(ctx, nil, "port-forward", "pod/web", ":8080")
	stdout, err := pf.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var pfErr bytes.Buffer
	pf.Stderr = &pfErr
	if err := pf.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = pf.Wait()
	}()
	line := make([]byte, 256)
	n, err := stdout.Read(line)
	if err != nil {
		t.Fatalf("kubectl port-forward: %v: %s", err, pfErr.String())
	}
	var local int
	if _, err := fmt.Sscanf(string(line[:n]), "Forwarding from 127.0.0.1:%d -> 8080", &local); err != nil {
		t.Fatalf("kubectl port-forward said %q: %v", line[:n], err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/", local))
	if err != nil {
		t.Fatalf("GET through kubectl port-forward: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok-from-pod\n" {
		t.Errorf("GET through kubectl port-forward = %q", b)
	}
}

// runPod syncs pod until its want containers run (within 60 s) and kills
// it when the test ends.
func (env *realEnv) runPod(t *testing.T, pod *corev1.Pod, want int) {
	t.Helper()
	t.Cleanup(func() {
		if err := env.runtime.KillPod(context.Background(), pod, time.Second); err != nil {
			t.Errorf("KillPod: %v", err)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		rs, err := env.runtime.SyncPod(context.Background(), pod)
		if err != nil {
			t.Fatalf("SyncPod: %v", err)
		}
		if allRunning(rs, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod not running: %+v", rs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
