package rootcacert

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/skiff-project/skiff/pkg/controller/controllertest"
)

const caPEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

func TestSync(t *testing.T) {
	now := metav1.Now()
	active := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns1"}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}
	terminating := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns1", DeletionTimestamp: &now}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}}
	published := func(data map[string]string, annotations map[string]string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: ConfigMapName, Annotations: annotations}, Data: data}
	}
	good := published(map[string]string{"ca.crt": caPEM}, map[string]string{descriptionAnnotation: description})

	tests := []struct {
		name      string
		objects   []runtime.Object
		createErr error
		want      []string
		wantCM    *corev1.ConfigMap // the ConfigMap after the sync, when written
	}{
		{name: "new namespace gets the bundle", objects: []runtime.Object{active},
			want: []string{"create configmaps kube-root-ca.crt"}, wantCM: good},
		{name: "converged: nothing to write", objects: []runtime.Object{active, good}},
		{name: "changed bundle is put back, other annotations kept",
			objects: []runtime.Object{active, published(map[string]string{"ca.crt": "stale", "extra": "x"}, map[string]string{"owner": "me"})},
			want:    []string{"update configmaps kube-root-ca.crt"},
			wantCM:  published(map[string]string{"ca.crt": caPEM}, map[string]string{"owner": "me", descriptionAnnotation: description})},
		{name: "missing description annotation is added", objects: []runtime.Object{active, published(map[string]string{"ca.crt": caPEM}, nil)},
			want: []string{"update configmaps kube-root-ca.crt"}, wantCM: good},
		{name: "terminating namespace is left alone", objects: []runtime.Object{terminating}},
		{name: "missing namespace is a no-op"},
		{name: "namespace terminating meanwhile: create refused, not retried", objects: []runtime.Object{active},
			createErr: apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, ConfigMapName,
				errors.New("unable to create new content in namespace ns1 because it is being terminated")),
			want: []string{"create configmaps kube-root-ca.crt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset(tt.objects...)
			if tt.createErr != nil {
				client.PrependReactor("create", "configmaps", func(clienttesting.Action) (bool, runtime.Object, error) {
					return true, nil, tt.createErr
				})
			}
			factory := informers.NewSharedInformerFactory(client, 0)
			c, err := New(client, []byte(caPEM), factory.Core().V1().Namespaces(), factory.Core().V1().ConfigMaps())
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			controllertest.Seed(t, factory, tt.objects...)
			client.ClearActions()
			if err := c.sync(context.Background(), "ns1"); err != nil {
				t.Fatalf("sync: %v", err)
			}
			if diff := cmp.Diff(tt.want, controllertest.Writes(client.Actions())); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
			if tt.wantCM == nil || tt.createErr != nil {
				return
			}
			got, err := client.CoreV1().ConfigMaps("ns1").Get(context.Background(), ConfigMapName, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantCM.Data, got.Data); diff != "" {
				t.Errorf("data (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCM.Annotations, got.Annotations); diff != "" {
				t.Errorf("annotations (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewNeedsABundle(t *testing.T) {
	factory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	if _, err := New(fake.NewClientset(), nil, factory.Core().V1().Namespaces(), factory.Core().V1().ConfigMaps()); err == nil {
		t.Fatal("New without a CA bundle succeeded")
	}
}
