package kubelet

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

const webManifest = `# a comment before the document
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: nginx
    image: nginx:1.25
`

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadManifestBuildsStaticPod(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "web.yaml")
	writeFile(t, path, webManifest)
	pods, err := readManifest(path, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 1 {
		t.Fatalf("got %d pods, want 1", len(pods))
	}
	p := pods[0]
	if len(p.UID) != 32 {
		t.Errorf("UID %q, want 32 hex digits", p.UID)
	}
	wantMeta := metav1.ObjectMeta{
		Name: "web-node-1", Namespace: "default", UID: p.UID,
		Labels:      map[string]string{"app": "web"},
		Annotations: map[string]string{ConfigSourceAnnotationKey: "file", ConfigHashAnnotationKey: string(p.UID)},
	}
	if diff := cmp.Diff(wantMeta, p.ObjectMeta); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
	if p.Spec.NodeName != "node-1" {
		t.Errorf("nodeName %q, want node-1", p.Spec.NodeName)
	}
	wantTol := []corev1.Toleration{{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}}
	if diff := cmp.Diff(wantTol, p.Spec.Tolerations); diff != "" {
		t.Errorf("tolerations (-want +got):\n%s", diff)
	}
	// The API defaults are applied, as the API server would.
	c := p.Spec.Containers[0]
	if p.Spec.RestartPolicy != corev1.RestartPolicyAlways || p.Spec.DNSPolicy != corev1.DNSClusterFirst ||
		c.ImagePullPolicy != corev1.PullIfNotPresent || c.TerminationMessagePath != corev1.TerminationMessagePathDefault {
		t.Errorf("defaults not applied: restartPolicy %q dnsPolicy %q pullPolicy %q terminationMessagePath %q",
			p.Spec.RestartPolicy, p.Spec.DNSPolicy, c.ImagePullPolicy, c.TerminationMessagePath)
	}
	if p.Status.Phase != corev1.PodPending {
		t.Errorf("phase %q, want Pending", p.Status.Phase)
	}
}

// The UID is a function of the pod, the node and the file: stable across
// re-reads (kubelet restarts) and reformatting, different when any of the
// three changes.
func TestStaticPodUID(t *testing.T) {
	dir := t.TempDir()
	uid := func(file, node, content string) string {
		t.Helper()
		path := filepath.Join(dir, file)
		writeFile(t, path, content)
		pods, err := readManifest(path, node)
		if err != nil {
			t.Fatal(err)
		}
		return string(pods[0].UID)
	}
	base := uid("a.yaml", "node-1", webManifest)
	asJSON := `{"apiVersion":"v1","kind":"Pod","metadata":{"labels":{"app":"web"},"name":"web"},
	  "spec":{"containers":[{"image":"nginx:1.25","name":"nginx"}]}}`
	for _, c := range []struct {
		name      string
		got       string
		wantEqual bool
	}{
		{"read again", uid("a.yaml", "node-1", webManifest), true},
		{"same pod as JSON", uid("a.yaml", "node-1", asJSON), true},
		{"other node", uid("a.yaml", "node-2", webManifest), false},
		{"other file", uid("b.yaml", "node-1", webManifest), false},
		{"changed image", uid("a.yaml", "node-1", strings.Replace(webManifest, "1.25", "1.26", 1)), false},
	} {
		if (c.got == base) != c.wantEqual {
			t.Errorf("%s: UID %s vs %s, want equal=%v", c.name, c.got, base, c.wantEqual)
		}
	}
}

func TestReadManifestDocuments(t *testing.T) {
	cases := []struct {
		name    string
		content string
		want    []string // namespace/name of each pod
		wantErr string
	}{
		{name: "several documents, JSON among them", content: webManifest + "---\n---\n" +
			`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"db","namespace":"data"},"spec":{"containers":[{"name":"c","image":"pg"}]}}`,
			want: []string{"default/web-n", "data/db-n"}},
		{name: "a PodList", content: `apiVersion: v1
kind: PodList
items:
- metadata: {name: one}
  spec: {containers: [{name: c, image: busybox}]}
- metadata: {name: two}
  spec: {containers: [{name: c, image: busybox}]}
`, want: []string{"default/one-n", "default/two-n"}},
		{name: "empty file", content: "# nothing here\n"},
		{name: "no name", content: strings.Replace(webManifest, "name: web", "generateName: web-", 1), wantErr: "metadata.name: Required value"},
		{name: "not a pod", content: "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n", wantErr: "document 1: a static pod manifest holds v1 Pods, not /v1, Kind=Service"},
		{name: "invalid spec", content: "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n", wantErr: "invalid pod p: spec.containers: Required value"},
		{name: "not YAML", content: "apiVersion: v1\nkind: Pod\n  metadata: [\n", wantErr: "document 1: yaml: line 3"},
		{name: "no kind", content: "metadata: {name: p}\n", wantErr: "document 1: Object 'Kind' is missing"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "m.yaml")
			writeFile(t, path, c.content)
			pods, err := readManifest(path, "n")
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("error %v, want one naming %s and containing %q", err, path, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range pods {
				got = append(got, p.Namespace+"/"+p.Name)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("pods (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFileSourceScan follows a manifest directory through changes: hidden
// files, directories and invalid manifests contribute nothing, and each
// scan reports exactly the keys whose pod appeared, changed or went away.
func TestFileSourceScan(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "manifests")
	clk := clocktesting.NewFakeClock(t0)
	var changed []string
	s := newFileSource(dir, "node-1", clk, time.Second, func(key string) { changed = append(changed, key) })
	step := func(name string, wantKeys, wantChanged []string) {
		t.Helper()
		changed = nil
		s.scan(ctx)
		if diff := cmp.Diff(wantKeys, s.keys()); diff != "" {
			t.Errorf("%s: keys (-want +got):\n%s", name, diff)
		}
		if diff := cmp.Diff(wantChanged, changed); diff != "" {
			t.Errorf("%s: changed (-want +got):\n%s", name, diff)
		}
	}

	step("directory missing", nil, nil)
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "web.yaml"), webManifest)
	writeFile(t, filepath.Join(dir, ".web.yaml.swp"), strings.Replace(webManifest, "web", "swap", 1))
	writeFile(t, filepath.Join(dir, "sub", "nested.yaml"), strings.Replace(webManifest, "web", "nested", 1))
	writeFile(t, filepath.Join(dir, "broken.yaml"), "kind: Pod\n")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "dangling.yaml")); err != nil {
		t.Fatal(err)
	}
	step("web added", []string{"default/web-node-1"}, []string{"default/web-node-1"})
	first, _ := s.get("default/web-node-1")
	if first.Annotations[ConfigSeenAnnotationKey] != t0.Format(time.RFC3339Nano) {
		t.Errorf("seen annotation %q, want %q", first.Annotations[ConfigSeenAnnotationKey], t0.Format(time.RFC3339Nano))
	}

	clk.Step(time.Minute)
	step("nothing changed", []string{"default/web-node-1"}, nil)
	if again, _ := s.get("default/web-node-1"); again != first {
		t.Error("an unchanged pod was replaced")
	}

	// A second file defining the same pod is ignored.
	writeFile(t, filepath.Join(dir, "web2.yaml"), strings.Replace(webManifest, "nginx:1.25", "nginx:2", 1))
	writeFile(t, filepath.Join(dir, "db.yaml"), strings.Replace(webManifest, "name: web", "name: db", 1))
	step("db added, duplicate ignored", []string{"default/db-node-1", "default/web-node-1"}, []string{"default/db-node-1"})

	if err := os.Remove(filepath.Join(dir, "web2.yaml")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "web.yaml"), strings.Replace(webManifest, "nginx:1.25", "nginx:1.26", 1))
	// Make sure the modification is visible even on coarse mtimes.
	if err := os.Chtimes(filepath.Join(dir, "web.yaml"), t0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	step("web changed", []string{"default/db-node-1", "default/web-node-1"}, []string{"default/web-node-1"})
	if changedPod, _ := s.get("default/web-node-1"); changedPod.UID == first.UID {
		t.Error("the changed manifest kept its UID")
	}

	if err := os.Remove(filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	step("web removed", []string{"default/db-node-1"}, []string{"default/web-node-1"})
}

// BenchmarkFileSourceScan measures one re-read of a directory of ten
// unchanged manifests: what the kubelet pays every FileCheckFrequency.
func BenchmarkFileSourceScan(b *testing.B) {
	dir := b.TempDir()
	for i := range 10 {
		name := "web" + string(rune('a'+i))
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(strings.Replace(webManifest, "name: web", "name: "+name, 1)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	s := newFileSource(dir, "node-1", clocktesting.NewFakeClock(t0), time.Second, func(string) {})
	ctx := context.Background()
	s.scan(ctx)
	if n := len(s.keys()); n != 10 {
		b.Fatalf("%d static pods, want 10", n)
	}
	for b.Loop() {
		s.scan(ctx)
	}
}
