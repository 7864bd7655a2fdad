package clusterroleaggregation

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-project/skiff/pkg/controller/controllertest"
)

func role(name string, labels map[string]string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Rules: rules}
}

func aggregated(name string, pick map[string]string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
	r := role(name, nil, rules...)
	r.AggregationRule = &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: pick}}}
	return r
}

func read(resources ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{""}, Resources: resources}
}

func TestSync(t *testing.T) {
	toView := map[string]string{"rbac.authorization.k8s.io/aggregate-to-view": "true"}
	pods, svcs := read("pods"), read("services")
	tests := []struct {
		name      string
		objects   []runtime.Object
		want      []string
		wantRules []rbacv1.PolicyRule
	}{
		{name: "union of the picked roles in name order, duplicates once",
			objects: []runtime.Object{aggregated("view", toView), role("b-svc", toView, svcs, pods), role("a-pods", toView, pods), role("other", nil, read("secrets"))},
			want:    []string{"update clusterroles view"}, wantRules: []rbacv1.PolicyRule{pods, svcs}},
		{name: "converged: nothing to write",
			objects: []runtime.Object{aggregated("view", toView, pods), role("a-pods", toView, pods)}},
		{name: "a role that no longer matches loses its rules",
			objects: []runtime.Object{aggregated("view", toView, pods, svcs), role("a-pods", toView, pods)},
			want:    []string{"update clusterroles view"}, wantRules: []rbacv1.PolicyRule{pods}},
		{name: "nothing picked: empty rules",
			objects: []runtime.Object{aggregated("view", toView, pods)},
			want:    []string{"update clusterroles view"}, wantRules: []rbacv1.PolicyRule{}},
		{name: "a role without aggregationRule is left alone",
			objects: []runtime.Object{role("view", toView, pods)}},
		{name: "missing role is a no-op"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset(tt.objects...)
			factory := informers.NewSharedInformerFactory(client, 0)
			c, err := New(client, factory.Rbac().V1().ClusterRoles())
			if err != nil {
				t.Fatal(err)
			}
			controllertest.Seed(t, factory, tt.objects...)
			client.ClearActions()
			if err := c.sync(context.Background(), "view"); err != nil {
				t.Fatalf("sync: %v", err)
			}
			if diff := cmp.Diff(tt.want, controllertest.Writes(client.Actions())); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
			if tt.wantRules == nil {
				return
			}
			got, err := client.RbacV1().ClusterRoles().Get(context.Background(), "view", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantRules, got.Rules); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
		})
	}
}
