package apiserver

import (
	"context"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestRuleAllows(t *testing.T) {
	res := func(verb, group, resource, sub, name string) Attributes {
		return Attributes{Verb: verb, IsResource: true, APIGroup: group, Resource: resource, Subresource: sub, Name: name, Namespace: "ns"}
	}
	url := func(verb, path string) Attributes { return Attributes{Verb: verb, Path: path} }
	tests := []struct {
		name  string
		rule  rbacv1.PolicyRule
		attrs Attributes
		want  bool
	}{
		{"exact", rule(verbs("get"), groups(""), "pods"), res("get", "", "pods", "", "p"), true},
		{"other verb", rule(verbs("get"), groups(""), "pods"), res("list", "", "pods", "", ""), false},
		{"star verb", rule(verbs("*"), groups(""), "pods"), res("deletecollection", "", "pods", "", ""), true},
		{"other group", rule(verbs("get"), groups("apps"), "pods"), res("get", "", "pods", "", "p"), false},
		{"star group", rule(verbs("get"), groups("*"), "deployments"), res("get", "apps", "deployments", "", "d"), true},
		{"star resource", rule(verbs("get"), groups(""), "*"), res("get", "", "secrets", "", "s"), true},
		{"star resource covers subresources", rule(verbs("get"), groups(""), "*"), res("get", "", "pods", "log", "p"), true},
		{"resource does not cover its subresource", rule(verbs("get"), groups(""), "pods"), res("get", "", "pods", "log", "p"), false},
		{"resource/subresource", rule(verbs("get"), groups(""), "pods/log"), res("get", "", "pods", "log", "p"), true},
		{"subresource does not cover the resource", rule(verbs("get"), groups(""), "pods/log"), res("get", "", "pods", "", "p"), false},
		{"star/subresource", rule(verbs("update"), groups("*"), "*/scale"), res("update", "apps", "deployments", "scale", "d"), true},
		{"star/subresource, other subresource", rule(verbs("update"), groups("*"), "*/scale"), res("update", "apps", "deployments", "status", "d"), false},
		{"resourceNames match", rbacv1.PolicyRule{Verbs: verbs("get"), APIGroups: groups(""), Resources: []string{"configmaps"}, ResourceNames: []string{"a", "b"}},
			res("get", "", "configmaps", "", "b"), true},
		{"resourceNames other name", rbacv1.PolicyRule{Verbs: verbs("get"), APIGroups: groups(""), Resources: []string{"configmaps"}, ResourceNames: []string{"a"}},
			res("get", "", "configmaps", "", "c"), false},
		{"resourceNames never allow list", rbacv1.PolicyRule{Verbs: verbs("list"), APIGroups: groups(""), Resources: []string{"configmaps"}, ResourceNames: []string{"a"}},
			res("list", "", "configmaps", "", ""), false},
		{"resource rule does not match a URL", rule(verbs("*"), groups("*"), "*"), url("get", "/healthz"), false},
		{"url exact", urlRule(verbs("get"), "/healthz"), url("get", "/healthz"), true},
		{"url other verb", urlRule(verbs("get"), "/healthz"), url("post", "/healthz"), false},
		{"url prefix star", urlRule(verbs("get"), "/apis/*"), url("get", "/apis/apps/v1"), true},
		{"url prefix star needs the prefix", urlRule(verbs("get"), "/apis/*"), url("get", "/apis"), false},
		{"url star", urlRule(verbs("*"), "*"), url("delete", "/anything"), true},
		{"url rule does not match a resource", urlRule(verbs("*"), "*"), res("get", "", "pods", "", "p"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ruleAllows(tt.attrs, &tt.rule); got != tt.want {
				t.Errorf("ruleAllows = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAggregateClusterRoles(t *testing.T) {
	a := newRBACAuthorizer()
	for _, cr := range bootstrapClusterRoles() {
		if err := a.apply(cr, false); err != nil {
			t.Fatal(err)
		}
	}
	// A CRD's role joins view (and so edit and admin) by its label alone.
	crdView := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "widgets-view", Labels: map[string]string{aggregateToView: "true"}},
		Rules: []rbacv1.PolicyRule{rule(verbsRead, groups("example.com"), "widgets")}}
	// A cycle must not hang or drop rules.
	loopA := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "loop-a", Labels: map[string]string{"loop": "b"}},
		AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"loop": "a"}}}},
		Rules:           []rbacv1.PolicyRule{rule(verbs("get"), groups(""), "a")}}
	loopB := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "loop-b", Labels: map[string]string{"loop": "a"}},
		AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"loop": "b"}}}},
		Rules:           []rbacv1.PolicyRule{rule(verbs("get"), groups(""), "b")}}
	for _, o := range []runtime.Object{crdView, loopA, loopB} {
		if err := a.apply(o, false); err != nil {
			t.Fatal(err)
		}
	}
	agg := aggregateClusterRoles(a.clusterRoles)
	allows := func(role string, attrs Attributes) bool {
		for _, r := range agg[role] {
			if ruleAllows(attrs, &r) {
				return true
			}
		}
		return false
	}
	listPods := Attributes{Verb: "list", IsResource: true, Resource: "pods", Namespace: "ns"}
	createPods := Attributes{Verb: "create", IsResource: true, Resource: "pods", Namespace: "ns"}
	createRoles := Attributes{Verb: "create", IsResource: true, APIGroup: "rbac.authorization.k8s.io", Resource: "roles", Namespace: "ns"}
	getSecrets := Attributes{Verb: "get", IsResource: true, Resource: "secrets", Namespace: "ns", Name: "s"}
	listWidgets := Attributes{Verb: "list", IsResource: true, APIGroup: "example.com", Resource: "widgets", Namespace: "ns"}
	got := map[string][]bool{}
	for _, role := range []string{"view", "edit", "admin"} {
		for _, attrs := range []Attributes{listPods, createPods, createRoles, getSecrets, listWidgets} {
			got[role] = append(got[role], allows(role, attrs))
		}
	}
	want := map[string][]bool{
		// list pods, create pods, create roles, get secrets, list widgets
		"view":  {true, false, false, false, true},
		"edit":  {true, true, false, true, true},
		"admin": {true, true, true, true, true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("aggregated permissions (-want +got):\n%s", diff)
	}
	if n := len(agg["loop-a"]); n != 2 {
		t.Errorf("loop-a has %d rules, want its own and loop-b's", n)
	}
}

func TestRBACAuthorize(t *testing.T) {
	a := newRBACAuthorizer()
	objs := []runtime.Object{
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"}, Rules: []rbacv1.PolicyRule{rule(verbsRead, groups(""), "pods")}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "node-reader"}, Rules: []rbacv1.PolicyRule{rule(verbsRead, groups(""), "nodes")}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "cm-one"},
			Rules: []rbacv1.PolicyRule{{Verbs: verbs("get", "update"), APIGroups: groups(""), Resources: []string{"configmaps"}, ResourceNames: []string{"one"}}}},
		// Alice reads pods in "team" only: a RoleBinding scopes a ClusterRole.
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "alice-pods"},
			RoleRef:  rbacv1.RoleRef{Kind: "ClusterRole", Name: "pod-reader"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "alice"}}},
		// The team's ServiceAccounts (namespace defaulted) may touch configmap "one".
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "sa-cm"},
			RoleRef:  rbacv1.RoleRef{Kind: "Role", Name: "cm-one"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "builder"}}},
		// Group "ops" reads nodes everywhere.
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "ops-nodes"},
			RoleRef:  rbacv1.RoleRef{Kind: "ClusterRole", Name: "node-reader"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, Name: "ops"}}},
		// A binding to a role that does not exist.
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "dangling"},
			RoleRef:  rbacv1.RoleRef{Kind: "ClusterRole", Name: "ghost"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "carol"}}},
	}
	for _, o := range objs {
		if err := a.apply(o, false); err != nil {
			t.Fatal(err)
		}
	}
	alice := &UserInfo{Name: "alice", Groups: []string{"system:authenticated"}}
	builder := &UserInfo{Name: "system:serviceaccount:team:builder", Groups: serviceAccountGroups("team")}
	otherBuilder := &UserInfo{Name: "system:serviceaccount:other:builder", Groups: serviceAccountGroups("other")}
	bob := &UserInfo{Name: "bob", Groups: []string{"ops"}}
	carol := &UserInfo{Name: "carol"}
	root := &UserInfo{Name: "root", Groups: []string{"system:masters"}}
	res := func(u *UserInfo, verb, resource, ns, name string) Attributes {
		return Attributes{User: u, Verb: verb, IsResource: true, Resource: resource, Namespace: ns, Name: name}
	}
	tests := []struct {
		name       string
		attrs      Attributes
		want       bool
		wantReason string
	}{
		{"rolebinding grants in its namespace", res(alice, "list", "pods", "team", ""), true, `RBAC: allowed by RoleBinding "alice-pods/team" of ClusterRole "pod-reader" to User "alice"`},
		{"rolebinding does not grant elsewhere", res(alice, "list", "pods", "default", ""), false, ""},
		{"rolebinding does not grant cluster-wide", res(alice, "list", "pods", "", ""), false, ""},
		{"service account subject, namespace defaulted", res(builder, "update", "configmaps", "team", "one"), true, `RBAC: allowed by RoleBinding "sa-cm/team" of Role "cm-one" to ServiceAccount "builder/team"`},
		{"same name in another namespace", res(otherBuilder, "update", "configmaps", "team", "one"), false, ""},
		{"resourceNames", res(builder, "get", "configmaps", "team", "two"), false, ""},
		{"group via clusterrolebinding", res(bob, "get", "nodes", "", "n1"), true, `RBAC: allowed by ClusterRoleBinding "ops-nodes" of ClusterRole "node-reader" to Group "ops"`},
		{"missing role explains itself", res(carol, "get", "nodes", "", "n1"), false, `RBAC: clusterrole.rbac.authorization.k8s.io "ghost" not found`},
		{"masters need no role", res(root, "delete", "anything", "x", "y"), true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := a.explain(tt.attrs)
			if got != tt.want || reason != tt.wantReason {
				t.Errorf("explain = %v, %q; want %v, %q", got, reason, tt.want, tt.wantReason)
			}
			// Authorize decides the same, and explains only denials.
			got, reason, err := a.Authorize(context.Background(), tt.attrs)
			if err != nil || got != tt.want || (got && reason != "") || (!got && reason != tt.wantReason) {
				t.Errorf("Authorize = %v, %q, %v", got, reason, err)
			}
		})
	}

	// Deleting the binding takes the grant away; replace swaps everything.
	if err := a.apply(objs[3], true); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := a.Authorize(context.Background(), res(alice, "list", "pods", "team", "")); ok {
		t.Error("still allowed after the binding was deleted")
	}
	if err := a.replace("clusterrolebindings", nil); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := a.Authorize(context.Background(), res(bob, "get", "nodes", "", "n1")); ok {
		t.Error("still allowed after the cluster bindings were replaced by none")
	}
}

func TestBootstrapPolicyGrants(t *testing.T) {
	a := newRBACAuthorizer()
	for _, cr := range bootstrapClusterRoles() {
		if err := a.apply(cr, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range bootstrapClusterRoleBindings() {
		if err := a.apply(b, false); err != nil {
			t.Fatal(err)
		}
	}
	authed := func(name string, groups ...string) *UserInfo {
		return &UserInfo{Name: name, Groups: append(groups, "system:authenticated")}
	}
	coredns := authed("system:serviceaccount:kube-system:coredns", serviceAccountGroups("kube-system")...)
	proxySA := authed("system:serviceaccount:kube-system:kube-proxy", serviceAccountGroups("kube-system")...)
	someone := authed("someone")
	anon := &UserInfo{Name: "system:anonymous", Groups: []string{"system:unauthenticated"}}
	tests := []struct {
		name  string
		attrs Attributes
		want  bool
	}{
		{"coredns watches endpointslices", Attributes{User: coredns, Verb: "watch", IsResource: true, APIGroup: "discovery.k8s.io", Resource: "endpointslices"}, true},
		{"coredns lists namespaces", Attributes{User: coredns, Verb: "list", IsResource: true, Resource: "namespaces"}, true},
		{"coredns may not read secrets", Attributes{User: coredns, Verb: "list", IsResource: true, Resource: "secrets"}, false},
		{"kube-proxy SA watches services", Attributes{User: proxySA, Verb: "watch", IsResource: true, Resource: "services"}, true},
		{"kube-proxy user gets nodes", Attributes{User: authed(kubeProxyUser), Verb: "get", IsResource: true, Resource: "nodes", Name: "n"}, true},
		{"anyone authenticated discovers", Attributes{User: someone, Verb: "get", Path: "/apis/apps/v1"}, true},
		{"anyone authenticated asks what it may do", Attributes{User: someone, Verb: "create", IsResource: true, APIGroup: "authorization.k8s.io", Resource: "selfsubjectaccessreviews"}, true},
		{"anyone authenticated asks who it is", Attributes{User: someone, Verb: "create", IsResource: true, APIGroup: "authentication.k8s.io", Resource: "selfsubjectreviews"}, true},
		{"anonymous reads version", Attributes{User: anon, Verb: "get", Path: "/version"}, true},
		{"anonymous does not discover", Attributes{User: anon, Verb: "get", Path: "/api"}, false},
		{"nobody lists pods by default", Attributes{User: someone, Verb: "list", IsResource: true, Resource: "pods", Namespace: "default"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _, _ := a.Authorize(context.Background(), tt.attrs); got != tt.want {
				t.Errorf("Authorize = %v, want %v", got, tt.want)
			}
		})
	}
}

// BenchmarkRBACAuthorize is one authorization of a ServiceAccount through a
// RoleBinding, with the bootstrap policy and 1,000 other namespaces' bindings
// in the mirror.
func BenchmarkRBACAuthorize(b *testing.B) {
	a := newRBACAuthorizer()
	for _, cr := range bootstrapClusterRoles() {
		_ = a.apply(cr, false)
	}
	for _, crb := range bootstrapClusterRoleBindings() {
		_ = a.apply(crb, false)
	}
	for i := range 1000 {
		ns := "ns" + strconv.Itoa(i)
		_ = a.apply(&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "view"},
			RoleRef:  rbacv1.RoleRef{Kind: "ClusterRole", Name: "view"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "default"}}}, false)
	}
	attrs := Attributes{User: &UserInfo{Name: "system:serviceaccount:ns7:default", Groups: append(serviceAccountGroups("ns7"), "system:authenticated")},
		Verb: "list", IsResource: true, Resource: "pods", Namespace: "ns7"}
	for b.Loop() {
		if ok, _, _ := a.Authorize(context.Background(), attrs); !ok {
			b.Fatal("denied")
		}
	}
}
