// Package clusterroleaggregation is upstream's ClusterRole aggregation
// controller: a ClusterRole with an aggregationRule gets, as its rules,
// the union of the rules of every other ClusterRole its selectors pick, so
// `kubectl describe clusterrole admin` shows what admin grants. (The API
// server's RBAC authorizer computes the same union itself, so
// authorization does not wait for this controller.)
package clusterroleaggregation

import (
	"context"
	"fmt"
	"sort"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	rbacinformers "k8s.io/client-go/informers/rbac/v1"
	"k8s.io/client-go/kubernetes"
	rbaclisters "k8s.io/client-go/listers/rbac/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-project/skiff/pkg/controller"
)

// Name is the controller's name in logs and queue metrics.
const Name = "clusterrole-aggregation"

// Controller materialises aggregated ClusterRoles. Its queue holds the
// names of ClusterRoles with an aggregationRule.
type Controller struct {
	client kubernetes.Interface          // immutable; never nil
	lister rbaclisters.ClusterRoleLister // immutable; never nil
	loop   *controller.Loop              // immutable; never nil
}

// New returns a Controller watching ClusterRoles through inf; the caller
// starts the informer.
func New(client kubernetes.Interface, inf rbacinformers.ClusterRoleInformer) (*Controller, error) {
	c := &Controller{client: client, lister: inf.Lister()}
	c.loop = controller.NewLoop(Name, c.sync)
	// Any ClusterRole change may change any aggregate: requeue them all.
	enqueueAll := func(interface{}) {
		roles, err := c.lister.List(labels.Everything())
		if err != nil {
			return
		}
		for _, r := range roles {
			if r.AggregationRule != nil {
				c.loop.EnqueueKey(r.Name)
			}
		}
	}
	if err := c.loop.Watch(inf.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueueAll,
		UpdateFunc: func(_, obj interface{}) { enqueueAll(obj) },
		DeleteFunc: enqueueAll,
	}); err != nil {
		return nil, fmt.Errorf("watch clusterroles: %w", err)
	}
	return c, nil
}

// Run waits for the informer cache, then syncs with workers goroutines
// until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.loop.RunSynced(ctx, workers)
}

// sync writes the union of the selected roles' rules into the aggregated
// ClusterRole name, when it differs from its rules.
func (c *Controller) sync(ctx context.Context, name string) error {
	role, err := c.lister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get clusterrole %s: %w", name, err)
	}
	if role.AggregationRule == nil {
		return nil
	}
	rules, err := c.aggregate(role)
	if err != nil {
		return controller.Terminal(fmt.Errorf("clusterrole %s: %w", name, err))
	}
	if equality.Semantic.DeepEqual(rules, role.Rules) {
		return nil
	}
	updated := role.DeepCopy()
	updated.Rules = rules
	if _, err := c.client.RbacV1().ClusterRoles().Update(ctx, updated, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("update clusterrole %s: %w", name, err)
	}
	return nil
}

// aggregate is the union, in selector order and then role name order, of
// the rules of the other ClusterRoles role's selectors pick; never nil.
func (c *Controller) aggregate(role *rbacv1.ClusterRole) ([]rbacv1.PolicyRule, error) {
	rules := []rbacv1.PolicyRule{}
	for i := range role.AggregationRule.ClusterRoleSelectors {
		sel, err := metav1.LabelSelectorAsSelector(&role.AggregationRule.ClusterRoleSelectors[i])
		if err != nil {
			return nil, fmt.Errorf("invalid clusterRoleSelector: %w", err)
		}
		picked, err := c.lister.List(sel)
		if err != nil {
			return nil, fmt.Errorf("list clusterroles: %w", err)
		}
		sort.Slice(picked, func(a, b int) bool { return picked[a].Name < picked[b].Name })
		for _, p := range picked {
			if p.Name == role.Name {
				continue
			}
			for _, r := range p.Rules {
				if !hasRule(rules, r) {
					rules = append(rules, r)
				}
			}
		}
	}
	return rules, nil
}

func hasRule(rules []rbacv1.PolicyRule, r rbacv1.PolicyRule) bool {
	for i := range rules {
		if equality.Semantic.DeepEqual(rules[i], r) {
			return true
		}
	}
	return false
}
