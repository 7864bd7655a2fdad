package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-project/skiff/pkg/apiserver/apiservertest"
	"github.com/skiff-project/skiff/pkg/containerd"
	"github.com/skiff-project/skiff/pkg/images"
	"github.com/skiff-project/skiff/pkg/kubelet"
)

// TestAgentStaticPods runs a static pod on a real containerd: it starts
// from its manifest while the API server cannot be reached, keeps running
// (same container) when the agent restarts against a reachable one, shows
// up there as a mirror pod owned by the Node with the container's status,
// comes back when the mirror is deleted, and stops (containers and mirror
// gone) when its manifest is removed.
func TestAgentStaticPods(t *testing.T) {
	skipUnlessNode(t)
	srv := apiservertest.Start(t)
	client := srv.Client
	ctx := context.Background()

	cfg := testNodeConfig(t, nil, "static-test", "sks")
	dataDir := cfg.DataDir
	paths := PathsFor(dataDir)
	// Registered first, so it runs last: after the agents stopped.
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := Cleanup(cctx, dataDir, cfg.BridgeName, cfg.CgroupRoot); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if pids, _ := containerd.ShimPIDs(paths.Socket()); len(pids) > 0 {
			t.Errorf("shims left running: %v", pids)
		}
		if pid, alive := livePID(paths); alive {
			t.Errorf("containerd %d left running", pid)
		}
		if d, _ := filepath.Glob("/sys/fs/cgroup/*" + cfg.CgroupRoot); len(d) > 0 {
			t.Errorf("cgroups left behind: %v", d)
			_ = removeCgroupTree(cfg.CgroupRoot)
		}
	})
	if err := os.MkdirAll(paths.Manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(paths.Manifests, "web.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: static-web}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: `+images.BusyboxRef+`
    imagePullPolicy: Never
    command: [sh, -c, "echo started; exec sleep 3600"]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	podName := "web-" + cfg.NodeName

	// Phase 1: no API server (nothing listens on port 1).
	unreachable := rest.CopyConfig(srv.Config)
	unreachable.Host = "https://127.0.0.1:1"
	cfg.RestConfig = unreachable
	started := time.Now()
	agent1 := startAgent(t, cfg)
	waitFor(t, 2*time.Minute, "containerd's socket", func() (bool, bool) {
		_, err := os.Stat(paths.Socket())
		return true, err == nil
	})
	conn, err := containerd.Connect(ctx, paths.Socket(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	runningContainer := func() (string, bool) {
		cs, err := conn.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{
			State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
			LabelSelector: map[string]string{"io.kubernetes.pod.name": podName}})
		if err != nil || len(cs) != 1 {
			return "", false
		}
		return cs[0].Id, true
	}
	id := waitFor(t, 2*time.Minute, "the static pod's container running without an API server", runningContainer)
	t.Logf("static pod running %v after the agent started, with no API server", time.Since(started).Round(time.Millisecond))
	agent1.stop(t)

	// Phase 2: the API server is reachable.
	cfg.RestConfig = srv.Config
	startAgent(t, cfg)
	mirror := waitFor(t, time.Minute, "a Running mirror pod", func() (*corev1.Pod, bool) {
		p, err := client.CoreV1().Pods("default").Get(ctx, podName, metav1.GetOptions{})
		return p, err == nil && p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready
	})
	node, err := client.CoreV1().Nodes().Get(ctx, cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if o := mirror.OwnerReferences; len(o) != 1 || o[0].Kind != "Node" || o[0].UID != node.UID {
		t.Errorf("mirror owners %+v, want the Node (uid %s)", o, node.UID)
	}
	if mirror.Annotations[kubelet.ConfigMirrorAnnotationKey] == "" || mirror.Annotations[kubelet.ConfigSourceAnnotationKey] != "file" {
		t.Errorf("mirror annotations %v", mirror.Annotations)
	}
	if got := mirror.Status.ContainerStatuses[0].ContainerID; got != "containerd://"+id {
		t.Errorf("mirror shows container %s, want the one started without the API server, containerd://%s", got, id)
	}

	// A deleted mirror comes back; the pod keeps running.
	if err := client.CoreV1().Pods("default").Delete(ctx, podName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the mirror pod re-created", func() (bool, bool) {
		p, err := client.CoreV1().Pods("default").Get(ctx, podName, metav1.GetOptions{})
		return true, err == nil && p.UID != mirror.UID && p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning
	})
	if now, ok := runningContainer(); !ok || now != id {
		t.Errorf("container after the mirror's deletion: %q (running %v), want %s", now, ok, id)
	}

	// Removing the manifest stops the pod and deletes the mirror.
	if err := os.Remove(manifest); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	waitFor(t, time.Minute, "the static pod stopped and its mirror deleted", func() (bool, bool) {
		_, err := client.CoreV1().Pods("default").Get(ctx, podName, metav1.GetOptions{})
		sb, lerr := conn.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"io.kubernetes.pod.name": podName}})
		return true, apierrors.IsNotFound(err) && lerr == nil && len(sb) == 0
	})
	t.Logf("manifest removed → containers and mirror gone: %v", time.Since(removed).Round(time.Millisecond))
}
