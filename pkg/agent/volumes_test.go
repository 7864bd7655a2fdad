package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-project/skiff/pkg/apiserver/apiservertest"
	"github.com/skiff-project/skiff/pkg/containerd"
	"github.com/skiff-project/skiff/pkg/containerd/containerdtest"
	"github.com/skiff-project/skiff/pkg/images"
	"github.com/skiff-project/skiff/pkg/kubelet/volume"
)

// TestAgentPodVolumes runs, on a real containerd, a pod mounting a
// ConfigMap, an emptyDir and a memory emptyDir: it starts only once the
// missing ConfigMap exists (FailedMount, ContainerCreating until then),
// reads the files, sees a ConfigMap update reach the mounted file, and its
// deletion removes every volume and mount.
func TestAgentPodVolumes(t *testing.T) {
	skipUnlessNode(t)
	srv := apiservertest.Start(t)
	client := srv.Client
	ctx := context.Background()

	cidr := containerdtest.FreeCIDR(t, 215)
	cfg := testNodeConfig(t, srv.Config, "agent-vol", "skv")
	dataDir := cfg.DataDir
	paths := PathsFor(dataDir)
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := Cleanup(cctx, dataDir, cfg.BridgeName, cfg.CgroupRoot); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		// Volumes of a pod the test failed to delete.
		if m, _ := containerd.MountsUnder(dataDir); len(m) > 0 {
			t.Errorf("mounts left behind: %v", m)
			for _, p := range m {
				_ = syscall.Unmount(p, syscall.MNT_DETACH)
			}
		}
	})
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	startAgent(t, cfg)
	node := waitFor(t, 2*time.Minute, "node registered", func() (*corev1.Node, bool) {
		n, err := client.CoreV1().Nodes().Get(ctx, cfg.NodeName, metav1.GetOptions{})
		return n, err == nil
	})
	node.Spec.PodCIDR, node.Spec.PodCIDRs = cidr.String(), []string{cidr.String()}
	if _, err := client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("setting podCIDR: %v", err)
	}

	pod, err := client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "vol", Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName:                      cfg.NodeName,
			TerminationGracePeriodSeconds: new(int64(1)),
			Containers: []corev1.Container{{
				Name: "main", Image: images.BusyboxRef, ImagePullPolicy: corev1.PullNever,
				Command: []string{"sh", "-c", `echo hi > /scratch/f; echo m > /mem/f
while true; do echo "cfg=$(cat /cfg/index) scratch=$(cat /scratch/f) mem=$(cat /mem/f) sub=$(cat /index)"; sleep 0.2; done`},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "cfg", MountPath: "/cfg"},
					{Name: "cfg", MountPath: "/index", SubPath: "index"},
					{Name: "scratch", MountPath: "/scratch"},
					{Name: "mem", MountPath: "/mem"},
				},
			}},
			Volumes: []corev1.Volume{
				{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "site"}}}},
				{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: new(resource.MustParse("1Mi"))}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// The ConfigMap does not exist yet.
	waitFor(t, time.Minute, "FailedMount event", func() (string, bool) {
		evs, err := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err.Error(), false
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == "vol" && e.Reason == "FailedMount" {
				return e.Message, strings.Contains(e.Message, `volume "cfg"`)
			}
		}
		return "", false
	})
	waitFor(t, 10*time.Second, "container waiting in ContainerCreating", func() (*corev1.Pod, bool) {
		p, err := client.CoreV1().Pods("default").Get(ctx, "vol", metav1.GetOptions{})
		return p, err == nil && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
			p.Status.ContainerStatuses[0].State.Waiting.Reason == "ContainerCreating"
	})

	cm, err := client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "site"}, Data: map[string]string{"index": "v1"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(paths.PodLogs, "default_vol_"+string(pod.UID), "main", "0.log")
	readLog := func(want string) func() (string, bool) {
		return func() (string, bool) {
			b, _ := os.ReadFile(logPath)
			return string(b), strings.Contains(string(b), want)
		}
	}
	// The kubelet's retries back off after the failures: allow a resync.
	waitFor(t, 90*time.Second, "the pod reading its volumes", readLog("cfg=v1 scratch=hi mem=m sub=v1"))
	hostFile := filepath.Join(paths.Pods, string(pod.UID), "volumes", volume.PluginConfigMap, "cfg", "index")
	if b, err := os.ReadFile(hostFile); err != nil || string(b) != "v1" {
		t.Errorf("host file %s = %q, %v; want v1", hostFile, b, err)
	}

	// An update reaches the mounted file (not the subPath one, as upstream).
	cm.Data["index"] = "v2"
	if _, err := client.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the updated ConfigMap in the pod", readLog("cfg=v2 scratch=hi mem=m sub=v1"))

	if err := client.CoreV1().Pods("default").Delete(ctx, "vol", metav1.DeleteOptions{GracePeriodSeconds: new(int64(1))}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "pod gone with its volumes", func() (error, bool) {
		_, err := client.CoreV1().Pods("default").Get(ctx, "vol", metav1.GetOptions{})
		_, statErr := os.Stat(filepath.Join(paths.Pods, string(pod.UID)))
		return statErr, apierrors.IsNotFound(err) && os.IsNotExist(statErr)
	})
	if m, _ := containerd.MountsUnder(paths.Pods); len(m) > 0 {
		t.Errorf("volume mounts left after the pod's deletion: %v", m)
	}
}
