package apiserver

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The bootstrap RBAC policy: the default roles and bindings every cluster
// has, with upstream's names, labels and annotations, plus the identities
// of Skiff's add-ons (CoreDNS, kube-proxy) in kube-system.

// Label and annotation of bootstrap policy objects, as upstream.
const (
	bootstrapLabelKey   = "kubernetes.io/bootstrapping"
	bootstrapLabelValue = "rbac-defaults"
	autoUpdateKey       = rbacv1.AutoUpdateAnnotationKey // "rbac.authorization.kubernetes.io/autoupdate"
)

// Aggregation labels of the user-facing roles.
const (
	aggregateToAdmin = "rbac.authorization.k8s.io/aggregate-to-admin"
	aggregateToEdit  = "rbac.authorization.k8s.io/aggregate-to-edit"
	aggregateToView  = "rbac.authorization.k8s.io/aggregate-to-view"
)

var (
	verbsRead      = []string{"get", "list", "watch"}
	verbsWrite     = []string{"create", "update", "patch", "delete", "deletecollection"}
	verbsReadWrite = []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
	verbsEvents    = []string{"create", "update", "patch"}
)

// rule builds a resource rule (with its own copies of the slices).
func rule(verbs []string, groups []string, resources ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: slices.Clone(verbs), APIGroups: slices.Clone(groups), Resources: resources}
}

// urlRule builds a non-resource rule.
func urlRule(verbs []string, urls ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: slices.Clone(verbs), NonResourceURLs: urls}
}

func groups(g ...string) []string { return g }

func verbs(v ...string) []string { return v }

// bootstrapClusterRoles are the default ClusterRoles.
func bootstrapClusterRoles() []*rbacv1.ClusterRole {
	core, apps, batch, autoscaling, policy, networking, discovery, events, rbac, coordination :=
		groups(""), groups("apps"), groups("batch"), groups("autoscaling"), groups("policy"),
		groups("networking.k8s.io"), groups("discovery.k8s.io"), groups("events.k8s.io"), groups("rbac.authorization.k8s.io"), groups("coordination.k8s.io")
	aggregated := func(name, label string, pickLabel string) *rbacv1.ClusterRole {
		cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name},
			AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{pickLabel: "true"}}}}}
		if label != "" {
			cr.Labels = map[string]string{label: "true"}
		}
		return cr
	}
	withLabel := func(name, label string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
		return &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{label: "true"}}, Rules: rules}
	}
	plain := func(name string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
		return &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
	}
	return []*rbacv1.ClusterRole{
		plain("cluster-admin",
			rule(verbs("*"), groups("*"), "*"),
			urlRule(verbs("*"), "*")),
		plain("system:discovery",
			urlRule(verbs("get"), "/livez", "/readyz", "/healthz", "/version", "/version/",
				"/openapi", "/openapi/*", "/api", "/api/*", "/apis", "/apis/*")),
		plain("system:basic-user",
			rule(verbs("create"), groups("authorization.k8s.io"), "selfsubjectaccessreviews", "selfsubjectrulesreviews"),
			rule(verbs("create"), groups("authentication.k8s.io"), "selfsubjectreviews")),
		plain("system:public-info-viewer",
			urlRule(verbs("get"), "/livez", "/readyz", "/healthz", "/version", "/version/")),
		plain("system:auth-delegator",
			rule(verbs("create"), groups("authentication.k8s.io"), "tokenreviews"),
			rule(verbs("create"), groups("authorization.k8s.io"), "subjectaccessreviews")),

		// The user-facing roles: admin ⊇ edit ⊇ view, each the union of
		// the roles labelled to aggregate into it.
		aggregated("admin", "", aggregateToAdmin),
		aggregated("edit", aggregateToAdmin, aggregateToEdit),
		aggregated("view", aggregateToEdit, aggregateToView),
		withLabel("system:aggregate-to-admin", aggregateToAdmin,
			rule(verbs("create"), groups("authorization.k8s.io"), "localsubjectaccessreviews"),
			rule(verbsReadWrite, rbac, "roles", "rolebindings")),
		withLabel("system:aggregate-to-edit", aggregateToEdit,
			rule(verbsRead, core, "pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets", "services/proxy"),
			rule(verbs("impersonate"), core, "serviceaccounts"),
			rule(verbsWrite, core, "pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"),
			rule(verbs("create"), core, "pods/eviction"),
			rule(verbsWrite, core, "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
				"services", "services/proxy", "persistentvolumeclaims", "configmaps", "secrets", "events"),
			rule(verbs("create"), core, "serviceaccounts/token"),
			rule(verbsWrite, apps, "statefulsets", "statefulsets/scale", "daemonsets", "deployments", "deployments/scale",
				"deployments/rollback", "replicasets", "replicasets/scale"),
			rule(verbsWrite, autoscaling, "horizontalpodautoscalers"),
			rule(verbsWrite, batch, "jobs", "cronjobs"),
			rule(verbsWrite, policy, "poddisruptionbudgets"),
			rule(verbsWrite, networking, "networkpolicies", "ingresses"),
			rule(verbsReadWrite, coordination, "leases")),
		withLabel("system:aggregate-to-view", aggregateToView,
			rule(verbsRead, core, "pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
				"services", "services/status", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "configmaps"),
			rule(verbsRead, core, "limitranges", "resourcequotas", "bindings", "events", "pods/status",
				"resourcequotas/status", "namespaces/status", "replicationcontrollers/status", "pods/log"),
			rule(verbsRead, core, "namespaces"),
			rule(verbsRead, discovery, "endpointslices"),
			rule(verbsRead, apps, "controllerrevisions", "statefulsets", "statefulsets/status", "statefulsets/scale",
				"daemonsets", "daemonsets/status", "deployments", "deployments/status", "deployments/scale",
				"replicasets", "replicasets/status", "replicasets/scale"),
			rule(verbsRead, autoscaling, "horizontalpodautoscalers", "horizontalpodautoscalers/status"),
			rule(verbsRead, batch, "cronjobs", "cronjobs/status", "jobs", "jobs/status"),
			rule(verbsRead, policy, "poddisruptionbudgets", "poddisruptionbudgets/status"),
			rule(verbsRead, networking, "ingresses", "ingresses/status", "networkpolicies"),
			rule(verbsRead, events, "events")),

		// Components.
		plain("system:node-proxier",
			rule(verbs("list", "watch"), core, "services", "endpoints"),
			rule(verbsRead, core, "nodes"),
			rule(verbsEvents, core, "events"),
			rule(verbsEvents, events, "events"),
			rule(verbs("list", "watch"), discovery, "endpointslices")),
		plain("system:coredns",
			rule(verbs("list", "watch"), core, "endpoints", "services", "pods", "namespaces"),
			rule(verbs("list", "watch"), discovery, "endpointslices")),
	}
}

// Identities bound by the bootstrap policy.
const (
	kubeProxyUser           = "system:kube-proxy"
	coreDNSServiceAccount   = "coredns"
	kubeProxyServiceAccount = "kube-proxy"
)

// bootstrapClusterRoleBindings are the default ClusterRoleBindings.
func bootstrapClusterRoleBindings() []*rbacv1.ClusterRoleBinding {
	bind := func(name, role string, subjects ...rbacv1.Subject) *rbacv1.ClusterRoleBinding {
		return &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   subjects,
		}
	}
	group := func(n string) rbacv1.Subject {
		return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: n}
	}
	user := func(n string) rbacv1.Subject {
		return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: n}
	}
	sa := func(ns, n string) rbacv1.Subject {
		return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: n}
	}
	return []*rbacv1.ClusterRoleBinding{
		bind("cluster-admin", "cluster-admin", group(mastersGroup)),
		bind("system:discovery", "system:discovery", group("system:authenticated")),
		bind("system:basic-user", "system:basic-user", group("system:authenticated")),
		bind("system:public-info-viewer", "system:public-info-viewer", group("system:authenticated"), group("system:unauthenticated")),
		bind("system:node-proxier", "system:node-proxier", user(kubeProxyUser)),
		// kubeadm's name for the same grant to the kube-proxy DaemonSet's
		// ServiceAccount.
		bind("kubeadm:node-proxier", "system:node-proxier", sa("kube-system", kubeProxyServiceAccount)),
		bind("system:coredns", "system:coredns", sa("kube-system", coreDNSServiceAccount)),
	}
}

// bootstrapServiceAccounts are the add-ons' ServiceAccounts.
func bootstrapServiceAccounts() []*corev1.ServiceAccount {
	return []*corev1.ServiceAccount{
		{ObjectMeta: metav1.ObjectMeta{Name: coreDNSServiceAccount, Namespace: "kube-system"}},
		{ObjectMeta: metav1.ObjectMeta{Name: kubeProxyServiceAccount, Namespace: "kube-system"}},
	}
}

var (
	rbacClusterRoles        = schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}
	rbacClusterRoleBindings = schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"}
)

// bootstrapPolicy creates the bootstrap policy objects that are missing,
// and brings existing ones annotated autoupdate "true" up to date by adding
// what they lack (rules, subjects, labels, the aggregation rule), as
// upstream's reconciliation does; it never removes anything, so an
// operator's additions survive restarts. Objects annotated otherwise are
// left alone.
func (s *Server) bootstrapPolicy(ctx context.Context) error {
	opts := requestOptions{fieldManager: bootstrapManager}
	for _, cr := range bootstrapClusterRoles() {
		markBootstrap(&cr.ObjectMeta)
		if err := s.reconcile(ctx, rbacClusterRoles, "", cr, opts, func(cur runtime.Object) bool {
			have := cur.(*rbacv1.ClusterRole)
			changed := mergeMeta(&have.ObjectMeta, &cr.ObjectMeta)
			for _, r := range cr.Rules {
				if !containsRule(have.Rules, r) {
					have.Rules = append(have.Rules, r)
					changed = true
				}
			}
			if have.AggregationRule == nil && cr.AggregationRule != nil {
				have.AggregationRule, changed = cr.AggregationRule, true
			}
			return changed
		}); err != nil {
			return err
		}
	}
	for _, b := range bootstrapClusterRoleBindings() {
		markBootstrap(&b.ObjectMeta)
		if err := s.reconcile(ctx, rbacClusterRoleBindings, "", b, opts, func(cur runtime.Object) bool {
			have := cur.(*rbacv1.ClusterRoleBinding)
			changed := mergeMeta(&have.ObjectMeta, &b.ObjectMeta)
			for _, subj := range b.Subjects {
				found := false
				for _, h := range have.Subjects {
					found = found || h == subj
				}
				if !found {
					have.Subjects = append(have.Subjects, subj)
					changed = true
				}
			}
			return changed
		}); err != nil {
			return err
		}
	}
	for _, sa := range bootstrapServiceAccounts() {
		if err := s.ensure(ctx, coreServiceAccounts, sa.Namespace, sa, opts); err != nil {
			return err
		}
	}
	return nil
}

func markBootstrap(m *metav1.ObjectMeta) {
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	m.Labels[bootstrapLabelKey] = bootstrapLabelValue
	m.Annotations = map[string]string{autoUpdateKey: "true"}
}

// mergeMeta adds the labels of want that have lacks.
func mergeMeta(have, want *metav1.ObjectMeta) bool {
	changed := false
	for k, v := range want.Labels {
		if _, ok := have.Labels[k]; !ok {
			if have.Labels == nil {
				have.Labels = map[string]string{}
			}
			have.Labels[k], changed = v, true
		}
	}
	return changed
}

// reconcile creates obj if missing; otherwise, when the stored object is
// annotated autoupdate "true", lets merge add what is missing to a copy of
// it and writes the copy if merge reports a change.
func (s *Server) reconcile(ctx context.Context, gvr schema.GroupVersionResource, ns string, obj runtime.Object, opts requestOptions, merge func(cur runtime.Object) bool) error {
	ep, ok := s.lookup(gvr)
	if !ok {
		return fmt.Errorf("no endpoint for %s", gvr)
	}
	name := obj.(metav1.Object).GetName()
	stored, err := ep.store.Get(ctx, ep.key(ns, name))
	if err != nil {
		return s.ensure(ctx, gvr, ns, obj, opts)
	}
	// Most starts change nothing: decide on a copy before writing.
	if cur, err := ep.toServed(stored); err != nil || cur.(metav1.Object).GetAnnotations()[autoUpdateKey] != "true" || !merge(cur) {
		return nil
	}
	_, _, err = s.update(ctx, ep, ns, name, "", opts, func(cur runtime.Object) (runtime.Object, error) {
		if cur.(metav1.Object).GetAnnotations()[autoUpdateKey] == "true" {
			merge(cur)
		}
		return cur, nil
	}, nil)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reconcile %s %s: %w", gvr.Resource, name, err)
	}
	return nil
}
