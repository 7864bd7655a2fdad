package apiserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/skiff-project/skiff/pkg/apiserver/apiservertest"
)

func deployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx:1.25"}}},
			},
		},
	}
}

func TestCRUDAndConflict(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	d := s.Client.AppsV1().Deployments("default")
	created, err := d.Create(ctx, deployment("web", 3), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if created.UID == "" || created.ResourceVersion == "" || created.Generation != 1 {
		t.Fatalf("create did not set uid/rv/generation: %+v", created.ObjectMeta)
	}
	// Defaults were applied.
	if created.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || created.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		t.Fatalf("defaults missing: %+v", created.Spec)
	}
	if _, err := d.Create(ctx, deployment("web", 3), metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("second create: want AlreadyExists, got %v", err)
	}
	got, err := d.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	got.Spec.Replicas = ptr.To[int32](5)
	updated, err := d.Update(ctx, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if updated.Generation != 2 {
		t.Fatalf("generation after spec change = %d, want 2", updated.Generation)
	}
	// A stale resourceVersion conflicts.
	got.Spec.Replicas = ptr.To[int32](7)
	if _, err := d.Update(ctx, got, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale update: want Conflict, got %v", err)
	}
	if err := d.Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := d.Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get after delete: want NotFound, got %v", err)
	}
}

func TestInvalidObjectIs422WithFieldPath(t *testing.T) {
	s := apiservertest.Start(t)
	_, err := s.Client.AppsV1().Deployments("default").Create(context.Background(), deployment("web", -1), metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("want Invalid, got %v", err)
	}
	want := `spec.replicas: Invalid value: -1: must be greater than or equal to 0`
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err.Error(), want)
	}
}

func TestWatchSeesCreateUpdateDeleteInOrder(t *testing.T) {
	s := apiservertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cms := s.Client.CoreV1().ConfigMaps("default")
	list, err := cms.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	defer w.Stop()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Data: map[string]string{"a": "1"}}
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Patch(ctx, "c", types.MergePatchType, []byte(`{"data":{"a":"2"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "c", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var got []watch.EventType
	for len(got) < 3 {
		select {
		case ev := <-w.ResultChan():
			got = append(got, ev.Type)
		case <-ctx.Done():
			t.Fatalf("timed out; events so far %v", got)
		}
	}
	want := []watch.EventType{watch.Added, watch.Modified, watch.Deleted}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events = %v, want %v", got, want)
		}
	}
}

func TestServerSideApplyTracksManagers(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	cm := corev1ac.ConfigMap("applied", "default").WithData(map[string]string{"k": "v"})
	out, err := s.Client.CoreV1().ConfigMaps("default").Apply(ctx, cm, metav1.ApplyOptions{FieldManager: "tester"})
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if len(out.ManagedFields) != 1 || out.ManagedFields[0].Manager != "tester" || out.ManagedFields[0].Operation != metav1.ManagedFieldsOperationApply {
		t.Fatalf("managedFields = %+v", out.ManagedFields)
	}
	// Applying the same configuration again changes nothing.
	again, err := s.Client.CoreV1().ConfigMaps("default").Apply(ctx, cm, metav1.ApplyOptions{FieldManager: "tester"})
	if err != nil {
		t.Fatalf("re-apply: %v", err)
	}
	if again.ResourceVersion != out.ResourceVersion {
		t.Fatalf("no-op apply changed resourceVersion %s → %s", out.ResourceVersion, again.ResourceVersion)
	}
	// A second manager taking the same field conflicts.
	other := corev1ac.ConfigMap("applied", "default").WithData(map[string]string{"k": "other"})
	if _, err := s.Client.CoreV1().ConfigMaps("default").Apply(ctx, other, metav1.ApplyOptions{FieldManager: "intruder"}); !apierrors.IsConflict(err) {
		t.Fatalf("conflicting apply: want Conflict, got %v", err)
	}
	d := appsv1ac.Deployment("ssa", "default").WithSpec(appsv1ac.DeploymentSpec().
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{"app": "ssa"})).
		WithTemplate(corev1ac.PodTemplateSpec().WithLabels(map[string]string{"app": "ssa"}).
			WithSpec(corev1ac.PodSpec().WithContainers(corev1ac.Container().WithName("c").WithImage("busybox")))))
	if _, err := s.Client.AppsV1().Deployments("default").Apply(ctx, d, metav1.ApplyOptions{FieldManager: "tester"}); err != nil {
		t.Fatalf("apply deployment: %v", err)
	}
}

func rawRequest(t *testing.T, cfg *rest.Config, method, path, contentType string, body []byte, accept string) (int, []byte, http.Header) {
	t.Helper()
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, cfg.Host+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data, resp.Header
}

func TestBadInputStatusCodes(t *testing.T) {
	s := apiservertest.Start(t)
	big := append([]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"x":"`), bytes.Repeat([]byte("a"), 4<<20)...)
	big = append(big, []byte(`"}}`)...)
	tests := []struct {
		name, method, path, ct string
		body                   string
		want                   int
	}{
		{"malformed json", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":`, 400},
		{"unknown resource", "GET", "/api/v1/namespaces/default/frobs", "", "", 404},
		{"unknown group", "GET", "/apis/nope.example.com/v1/things", "", "", 404},
		{"invalid name", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}`, 422},
		{"invalid label", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ok","labels":{"a":"` + strings.Repeat("x", 64) + `"}}}`, 422},
		{"too large", "POST", "/api/v1/namespaces/default/configmaps", "application/json", string(big), 413},
		{"missing namespace", "POST", "/api/v1/namespaces/nope/configmaps", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}`, 404},
		{"wrong kind", "POST", "/api/v1/namespaces/default/configmaps", "application/json", `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}`, 400},
		{"unsupported patch", "PATCH", "/api/v1/namespaces/default/configmaps/x", "text/plain", `x`, 415},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := rawRequest(t, s.Config, tc.method, tc.path, tc.ct, []byte(tc.body), "")
			if code != tc.want {
				t.Fatalf("%s %s: code %d, want %d; body %s", tc.method, tc.path, code, tc.want, body)
			}
			var st metav1.Status
			if err := json.Unmarshal(body, &st); err != nil || st.Kind != "Status" || int(st.Code) != tc.want {
				t.Fatalf("body is not a Status with code %d: %s", tc.want, body)
			}
		})
	}
}

func TestUnauthenticatedIs401AndUnauthorizedIs403(t *testing.T) {
	s := apiservertest.Start(t)
	anon := rest.AnonymousClientConfig(s.Config)
	if code, _, _ := rawRequest(t, anon, "GET", "/api/v1/pods", "", nil, ""); code != 401 {
		t.Fatalf("anonymous: code %d, want 401", code)
	}
	if code, _, _ := rawRequest(t, anon, "GET", "/readyz", "", nil, ""); code != 200 {
		t.Fatalf("anonymous /readyz: code %d, want 200", code)
	}
	nobody := rest.CopyConfig(s.Config)
	nobody.BearerToken = "nobody"
	code, body, _ := rawRequest(t, nobody, "GET", "/api/v1/namespaces/default/pods", "", nil, "")
	if code != 403 || !strings.Contains(string(body), `User \"nobody\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"`) {
		t.Fatalf("nobody: code %d body %s", code, body)
	}
}

func TestTableOutput(t *testing.T) {
	s := apiservertest.Start(t)
	if _, err := s.Client.AppsV1().Deployments("default").Create(context.Background(), deployment("web", 3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	code, body, _ := rawRequest(t, s.Config, "GET", "/apis/apps/v1/namespaces/default/deployments", "", nil, "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
	if code != 200 {
		t.Fatalf("code %d: %s", code, body)
	}
	var table metav1.Table
	if err := json.Unmarshal(body, &table); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range table.ColumnDefinitions {
		if c.Priority == 0 {
			names = append(names, c.Name)
		}
	}
	if got := strings.Join(names, " "); got != "Name Ready Up-to-date Available Age" {
		t.Fatalf("columns = %q", got)
	}
	if len(table.Rows) != 1 || table.Rows[0].Cells[0] != "web" || table.Rows[0].Cells[1] != "0/3" {
		t.Fatalf("rows = %+v", table.Rows)
	}
}

func TestDiscoveryListsBuiltinResources(t *testing.T) {
	s := apiservertest.Start(t)
	dc, err := discovery.NewDiscoveryClientForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	_, lists, err := dc.ServerGroupsAndResources()
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	have := map[string]bool{}
	for _, l := range lists {
		for _, r := range l.APIResources {
			have[l.GroupVersion+"/"+r.Name] = true
		}
	}
	for _, want := range []string{"v1/pods", "v1/pods/status", "apps/v1/deployments/scale", "batch/v1/cronjobs",
		"apiextensions.k8s.io/v1/customresourcedefinitions", "coordination.k8s.io/v1/leases", "autoscaling/v2/horizontalpodautoscalers"} {
		if !have[want] {
			t.Errorf("discovery lacks %s", want)
		}
	}
}

func TestScaleAndBinding(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	if _, err := s.Client.AppsV1().Deployments("default").Create(ctx, deployment("web", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sc, err := s.Client.AppsV1().Deployments("default").GetScale(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sc.Spec.Replicas = 4
	if _, err := s.Client.AppsV1().Deployments("default").UpdateScale(ctx, "web", sc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	d, _ := s.Client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	if *d.Spec.Replicas != 4 {
		t.Fatalf("replicas = %d after scale", *d.Spec.Replicas)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	if _, err := s.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	b := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Target: corev1.ObjectReference{Kind: "Node", Name: "node-1"}}
	if err := s.Client.CoreV1().Pods("default").Bind(ctx, b, metav1.CreateOptions{}); err != nil {
		t.Fatalf("bind: %v", err)
	}
	if err := s.Client.CoreV1().Pods("default").Bind(ctx, b, metav1.CreateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("second bind: want Conflict, got %v", err)
	}
	p, _ := s.Client.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
	if p.Spec.NodeName != "node-1" || p.Spec.ServiceAccountName != "default" {
		t.Fatalf("pod after bind: nodeName %q serviceAccount %q", p.Spec.NodeName, p.Spec.ServiceAccountName)
	}
	// A bound pod is deleted gracefully: deletionTimestamp set, object kept.
	if err := s.Client.CoreV1().Pods("default").Delete(ctx, "p", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err = s.Client.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
	if err != nil || p.DeletionTimestamp == nil {
		t.Fatalf("graceful delete: %v %+v", err, p)
	}
	if err := s.Client.CoreV1().Pods("default").Delete(ctx, "p", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after grace 0 delete: %v", err)
	}
}

func TestFinalizersAndPropagation(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	cms := s.Client.CoreV1().ConfigMaps("default")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "f", Finalizers: []string{"example.com/hold"}}}
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "f", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)}); err != nil {
		t.Fatal(err)
	}
	got, err := cms.Get(ctx, "f", metav1.GetOptions{})
	if err != nil || got.DeletionTimestamp == nil {
		t.Fatalf("want deleting object, got %v %+v", err, got)
	}
	if strings.Join(got.Finalizers, ",") != "example.com/hold,foregroundDeletion" {
		t.Fatalf("finalizers = %v", got.Finalizers)
	}
	got.Finalizers = nil
	if _, err := cms.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, "f", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("object must be gone once finalizers are removed, got %v", err)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dry"}}
	if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{DryRun: []string{"All"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.CoreV1().ConfigMaps("default").Get(ctx, "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("dry-run create stored the object: %v", err)
	}
}
