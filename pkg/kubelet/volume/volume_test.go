package volume

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
)

// newManager returns a Manager over a temporary pods directory and a fake
// client holding objs; every pod set up is torn down (unmounted) when the
// test ends.
func newManager(t *testing.T, objs ...runtime.Object) (*Manager, *fake.Clientset, *clocktesting.FakeClock) {
	t.Helper()
	client := fake.NewClientset(objs...)
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	m, err := New(Config{PodsDir: t.TempDir(), Client: client, Clock: clk, NodeAllocatable: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	return m, client, clk
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting tmpfs needs root")
	}
}

func testPod(vols ...corev1.Volume) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "uid-1",
			Labels: map[string]string{"app": "web", "tier": "front"}, Annotations: map[string]string{"note": `a "b"`}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
				Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
			}}},
			Volumes: vols,
		},
	}
}

// setUp sets up pod's volumes, registering their teardown, and fails the
// test on error.
func setUp(t *testing.T, m *Manager, pod *corev1.Pod) {
	t.Helper()
	t.Cleanup(func() {
		if err := m.TearDown(pod.UID); err != nil {
			t.Errorf("TearDown: %v", err)
		}
	})
	ready, err := m.SetUp(context.Background(), pod)
	if err != nil || !ready {
		t.Fatalf("SetUp = %v, %v; want ready", ready, err)
	}
}

func mountFiles(t *testing.T, m *Manager, pod *corev1.Pod, name string) map[string]string {
	t.Helper()
	mt, err := m.HostMount(pod, corev1.VolumeMount{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return readTree(t, mt.HostPath)
}

func TestConfigMapVolume(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cfg"},
		Data: map[string]string{"a.conf": "A", "b.conf": "B"}, BinaryData: map[string][]byte{"bin": {0, 1}}}
	m, client, clk := newManager(t, cm)
	pod := testPod(
		corev1.Volume{Name: "all", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, DefaultMode: new(int32(0o600))}}},
		corev1.Volume{Name: "items", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"},
			Items:                []corev1.KeyToPath{{Key: "a.conf", Path: "etc/a"}, {Key: "b.conf", Path: "b", Mode: new(int32(0o400))}}}}},
		corev1.Volume{Name: "missing-optional", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Optional: new(true)}}},
	)
	setUp(t, m, pod)
	if diff := cmp.Diff(map[string]string{"a.conf": "-rw------- A", "b.conf": "-rw------- B", "bin": "-rw------- \x00\x01"}, mountFiles(t, m, pod, "all")); diff != "" {
		t.Errorf("all keys (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"etc/a": "-rw-r--r-- A", "b": "-r-------- B"}, mountFiles(t, m, pod, "items")); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
	if got := mountFiles(t, m, pod, "missing-optional"); len(got) != 0 {
		t.Errorf("optional missing configMap holds %v, want nothing", got)
	}
	mt, err := m.HostMount(pod, corev1.VolumeMount{Name: "all"})
	if err != nil || !mt.ReadOnly || mt.HostPath != filepath.Join(m.PodDir("uid-1"), "volumes", PluginConfigMap, "all") {
		t.Errorf("HostMount = %+v, %v; want the read-only configmap directory", mt, err)
	}

	// An update reaches the files at the next SetUp.
	cm = cm.DeepCopy()
	cm.Data["a.conf"] = "A2"
	if _, err := client.CoreV1().ConfigMaps("ns").Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Within the cache TTL the ConfigMap is not read again.
	client.ClearActions()
	clk.Step(DefaultCacheTTL - time.Second)
	if _, err := m.SetUp(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	if got := mountFiles(t, m, pod, "items")["etc/a"]; got != "-rw-r--r-- A" {
		t.Errorf("etc/a within the cache TTL = %q, want A", got)
	}
	if n := len(client.Actions()); n != 0 {
		t.Errorf("SetUp within the cache TTL made %d API calls, want 0: %v", n, client.Actions())
	}
	clk.Step(time.Second)
	if _, err := m.SetUp(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	if got := mountFiles(t, m, pod, "items")["etc/a"]; got != "-rw-r--r-- A2" {
		t.Errorf("etc/a after update = %q, want A2", got)
	}
}

func TestConfigMapVolumeFailures(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cfg"}, Data: map[string]string{"a": "A"}}
	for name, src := range map[string]*corev1.ConfigMapVolumeSource{
		"missing configmap": {LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}},
		"missing key":       {LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Items: []corev1.KeyToPath{{Key: "x", Path: "x"}}},
		"escaping path":     {LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Items: []corev1.KeyToPath{{Key: "a", Path: "../x"}}},
	} {
		t.Run(name, func(t *testing.T) {
			m, _, _ := newManager(t, cm)
			pod := testPod(corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: src}})
			t.Cleanup(func() { _ = m.TearDown(pod.UID) })
			ready, err := m.SetUp(context.Background(), pod)
			var se *SetUpError
			if ready || !errors.As(err, &se) || se.Volume != "v" {
				t.Fatalf("SetUp = %v, %v; want not ready with a SetUpError for v", ready, err)
			}
			if !strings.HasPrefix(err.Error(), `MountVolume.SetUp failed for volume "v" : `) {
				t.Errorf("error %q lacks upstream's prefix", err)
			}
		})
	}
}

func TestConfigMapVolumeStaysReadyWhenRefreshFails(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cfg"}, Data: map[string]string{"a": "A"}}
	m, client, clk := newManager(t, cm)
	pod := testPod(corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}})
	setUp(t, m, pod)
	if err := client.CoreV1().ConfigMaps("ns").Delete(context.Background(), "cfg", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	clk.Step(DefaultCacheTTL)
	ready, err := m.SetUp(context.Background(), pod)
	if !ready || err == nil {
		t.Errorf("SetUp = %v, %v; want ready with an error", ready, err)
	}
	if got := mountFiles(t, m, pod, "v")["a"]; got != "-rw-r--r-- A" {
		t.Errorf("a = %q, want the previous content", got)
	}
}

func TestSecretVolumeIsTmpfs(t *testing.T) {
	needRoot(t)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"}, Data: map[string][]byte{"pw": []byte("hunter2")}}
	m, _, _ := newManager(t, s)
	pod := testPod(corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s"}}})
	setUp(t, m, pod)
	if diff := cmp.Diff(map[string]string{"pw": "-rw-r--r-- hunter2"}, mountFiles(t, m, pod, "v")); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	dir := filepath.Join(m.PodDir(pod.UID), "volumes", PluginSecret, "v")
	if mounted, err := isMountPoint(dir); err != nil || !mounted {
		t.Errorf("isMountPoint(%s) = %v, %v; want a tmpfs", dir, mounted, err)
	}
}

func TestDownwardAPIVolume(t *testing.T) {
	needRoot(t)
	m, _, _ := newManager(t)
	pod := testPod(corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
		{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
		{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}},
		{Path: "uid", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.uid"}},
		{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
		{Path: "annotations", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations"}},
		{Path: "mem", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "c", Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}},
		{Path: "cpu", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "c", Resource: "limits.cpu"}},
	}}}})
	setUp(t, m, pod)
	want := map[string]string{
		"name": "-rw-r--r-- web", "namespace": "-rw-r--r-- ns", "uid": "-rw-r--r-- uid-1",
		"labels": "-rw-r--r-- app=\"web\"\ntier=\"front\"", "annotations": `-rw-r--r-- note="a \"b\""`,
		"mem": "-rw-r--r-- 64", "cpu": "-rw-r--r-- 4",
	}
	if diff := cmp.Diff(want, mountFiles(t, m, pod, "v")); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestProjectedVolume(t *testing.T) {
	needRoot(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cfg"}, Data: map[string]string{"a": "A"}}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"}, Data: map[string][]byte{"pw": []byte("P")}}
	m, client, clk := newManager(t, cm, s)
	serveTokens(client, clk)
	pod := testPod(corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: new(int32(0o440)),
		Sources: []corev1.VolumeProjection{
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Items: []corev1.KeyToPath{{Key: "pw", Path: "sec/pw"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}},
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
		}}}})
	setUp(t, m, pod)
	want := map[string]string{"a": "-r--r----- A", "sec/pw": "-r--r----- P", "name": "-r--r----- web", "token": "-r--r----- token-1"}
	if diff := cmp.Diff(want, mountFiles(t, m, pod, "v")); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestEmptyDirVolume(t *testing.T) {
	m, _, _ := newManager(t)
	pod := testPod(corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	setUp(t, m, pod)
	mt, err := m.HostMount(pod, corev1.VolumeMount{Name: "scratch"})
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(mt.HostPath)
	if err != nil || !info.IsDir() || info.Mode().Perm() != 0o777 || mt.ReadOnly {
		t.Fatalf("emptyDir %s: %v, %v, readOnly %v; want a writable 0777 directory", mt.HostPath, info, err, mt.ReadOnly)
	}
	if err := os.WriteFile(filepath.Join(mt.HostPath, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A second SetUp keeps the content.
	setUp(t, m, pod)
	if _, err := os.Stat(filepath.Join(mt.HostPath, "f")); err != nil {
		t.Errorf("emptyDir lost its content: %v", err)
	}
}

func TestEmptyDirMemoryIsSizedTmpfsRemovedAtTearDown(t *testing.T) {
	needRoot(t)
	m, _, _ := newManager(t)
	pod := testPod(corev1.Volume{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
		Medium: corev1.StorageMediumMemory, SizeLimit: new(resource.MustParse("1Mi"))}}})
	setUp(t, m, pod)
	mt, err := m.HostMount(pod, corev1.VolumeMount{Name: "mem"})
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(mt.HostPath, &st); err != nil {
		t.Fatal(err)
	}
	const tmpfsMagic = 0x01021994
	if st.Type != tmpfsMagic || uint64(st.Blocks)*uint64(st.Bsize) != 1<<20 {
		t.Errorf("statfs = type %#x, %d bytes; want a 1Mi tmpfs", st.Type, uint64(st.Blocks)*uint64(st.Bsize))
	}
	if err := m.TearDown(pod.UID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.PodDir(pod.UID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod directory after TearDown: %v, want gone", err)
	}
}

func TestHostPathTypes(t *testing.T) {
	base := t.TempDir()
	if err := os.WriteFile(filepath.Join(base, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path    string
		typ     corev1.HostPathType
		wantErr bool
	}{
		{"dir-missing", corev1.HostPathUnset, false},
		{".", corev1.HostPathDirectory, false},
		{"file", corev1.HostPathDirectory, true},
		{"missing", corev1.HostPathDirectory, true},
		{"new-dir/sub", corev1.HostPathDirectoryOrCreate, false},
		{"file", corev1.HostPathFile, false},
		{".", corev1.HostPathFile, true},
		{"new-file", corev1.HostPathFileOrCreate, false},
		{"file", corev1.HostPathSocket, true},
		{"file", corev1.HostPathBlockDev, true},
	} {
		p := filepath.Join(base, tc.path)
		err := checkHostPath(&corev1.HostPathVolumeSource{Path: p, Type: new(tc.typ)})
		if (err != nil) != tc.wantErr {
			t.Errorf("checkHostPath(%s, %q) = %v, want error %v", tc.path, tc.typ, err, tc.wantErr)
		}
	}
	for _, p := range []string{"new-dir/sub", "new-file"} {
		if _, err := os.Stat(filepath.Join(base, p)); err != nil {
			t.Errorf("%s was not created: %v", p, err)
		}
	}
	if err := checkHostPath(&corev1.HostPathVolumeSource{Path: "/dev/null", Type: new(corev1.HostPathCharDev)}); err != nil {
		t.Errorf("/dev/null as CharDevice: %v", err)
	}
}

func TestHostMountSubPath(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cfg"}, Data: map[string]string{"a": "A"}}
	m, _, _ := newManager(t, cm)
	host := t.TempDir()
	pod := testPod(
		corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: host}}},
	)
	setUp(t, m, pod)

	// A configMap key resolves to its file in the current data directory.
	mt, err := m.HostMount(pod, corev1.VolumeMount{Name: "cfg", SubPath: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(mt.HostPath); err != nil || string(b) != "A" || !mt.ReadOnly {
		t.Errorf("subPath a -> %s (%q, %v, readOnly %v); want the file A, read-only", mt.HostPath, b, err, mt.ReadOnly)
	}
	// A missing subPath of a writable volume is created.
	mt, err = m.HostMount(pod, corev1.VolumeMount{Name: "scratch", SubPath: "x/y"})
	if err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(mt.HostPath); err != nil || !info.IsDir() {
		t.Errorf("subPath x/y: %v, %v; want a directory", info, err)
	}
	// hostPath volumes are the host path itself.
	if mt, err := m.HostMount(pod, corev1.VolumeMount{Name: "host", ReadOnly: true}); err != nil || mt.HostPath != host || !mt.ReadOnly {
		t.Errorf("hostPath mount = %+v, %v", mt, err)
	}
	// Escapes are refused, lexically and through symlinks.
	scratch, _ := m.HostMount(pod, corev1.VolumeMount{Name: "scratch"})
	if err := os.Symlink("/etc", filepath.Join(scratch.HostPath, "evil")); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"../cfg", "/etc", "evil", "x/../../y"} {
		if mt, err := m.HostMount(pod, corev1.VolumeMount{Name: "scratch", SubPath: sub}); err == nil {
			t.Errorf("subPath %q resolved to %s, want an error", sub, mt.HostPath)
		}
	}
	if _, err := m.HostMount(pod, corev1.VolumeMount{Name: "nope"}); err == nil {
		t.Error("a mount of an unknown volume resolved")
	}
}

func TestUnsupportedVolumeFails(t *testing.T) {
	m, _, _ := newManager(t)
	pod := testPod(corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}})
	ready, err := m.SetUp(context.Background(), pod)
	if ready || err == nil {
		t.Errorf("SetUp = %v, %v; want not ready with an error", ready, err)
	}
}

func TestTearDownUnknownPod(t *testing.T) {
	m, _, _ := newManager(t)
	if err := m.TearDown("nobody"); err != nil {
		t.Errorf("TearDown of an unknown pod: %v", err)
	}
}
