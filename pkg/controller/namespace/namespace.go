// Package namespace empties terminating namespaces: it marks them
// Terminating, deletes every namespaced object in them, reports progress in
// the upstream status conditions and, once nothing is left, removes the
// "kubernetes" finalizer through the namespaces/finalize subresource so the
// API server can delete the namespace.
package namespace

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/skiff-project/skiff/pkg/controller"
)

// Name is the controller's name in logs and queue metrics.
const Name = "namespace-controller"

// DefaultRecheckInterval is how long a namespace whose content is still
// terminating (graceful pod deletion, foreign finalizers) waits before the
// next pass.
const DefaultRecheckInterval = 2 * time.Second

// Discoverer lists the namespaced resources the server serves, in their
// preferred versions. discovery.DiscoveryInterface satisfies it; partial
// results come with a *discovery.ErrGroupDiscoveryFailed.
type Discoverer interface {
	ServerPreferredNamespacedResources() ([]*metav1.APIResourceList, error)
}

// Options configure the controller. The zero value means the defaults.
type Options struct {
	// Discovery overrides client.Discovery(); tests use it.
	Discovery Discoverer
	// Clock stamps condition transition times; default the real clock.
	Clock clock.PassiveClock
	// RecheckInterval is the wait before re-examining a namespace whose
	// content is still going away; default DefaultRecheckInterval.
	RecheckInterval time.Duration
}

// Controller finalizes terminating namespaces. Its queue holds namespace
// names.
type Controller struct {
	client    kubernetes.Interface        // immutable; never nil
	metadata  metadata.Interface          // immutable; never nil
	discovery Discoverer                  // immutable; never nil
	lister    corelisters.NamespaceLister // immutable; never nil
	synced    cache.InformerSynced        // immutable; never nil
	clock     clock.PassiveClock          // immutable; never nil
	recheck   time.Duration               // immutable; > 0
	loop      *controller.Loop            // immutable; never nil
}

// New returns a Controller that watches namespaces through factory and
// deletes their content with metadataClient (which works for every resource,
// built-in or custom, without decoding its body). The caller starts factory.
func New(client kubernetes.Interface, metadataClient metadata.Interface, factory informers.SharedInformerFactory, opts Options) (*Controller, error) {
	if opts.Discovery == nil {
		opts.Discovery = client.Discovery()
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.RecheckInterval <= 0 {
		opts.RecheckInterval = DefaultRecheckInterval
	}
	ns := factory.Core().V1().Namespaces()
	c := &Controller{
		client:    client,
		metadata:  metadataClient,
		discovery: opts.Discovery,
		lister:    ns.Lister(),
		synced:    ns.Informer().HasSynced,
		clock:     opts.Clock,
		recheck:   opts.RecheckInterval,
	}
	c.loop = controller.NewLoop(Name, c.sync)
	if _, err := ns.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.loop.Enqueue,
		UpdateFunc: func(_, obj interface{}) { c.loop.Enqueue(obj) },
	}); err != nil {
		return nil, fmt.Errorf("add namespace handler: %w", err)
	}
	return c, nil
}

// Run waits for the namespace cache and then syncs namespaces with workers
// goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	if !cache.WaitForNamedCacheSync(Name, ctx.Done(), c.synced) {
		return
	}
	c.loop.Run(ctx, workers)
}

// sync drives one terminating namespace one step towards deletion.
func (c *Controller) sync(ctx context.Context, name string) error {
	cached, err := c.lister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get namespace %s: %w", name, err)
	}
	if cached.DeletionTimestamp == nil {
		return nil
	}
	ns := cached.DeepCopy()
	if ns.Status.Phase != corev1.NamespaceTerminating {
		ns.Status.Phase = corev1.NamespaceTerminating
		if ns, err = c.client.CoreV1().Namespaces().UpdateStatus(ctx, ns, metav1.UpdateOptions{}); err != nil {
			return ignoreNotFound(fmt.Errorf("mark namespace %s terminating: %w", name, err))
		}
	}
	if !slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		// Our part is done; other finalizers are someone else's.
		return nil
	}

	res := c.deleteContent(ctx, name)
	if conds, changed := updateConditions(ns.Status.Conditions, res, metav1.NewTime(c.clock.Now())); changed {
		ns = ns.DeepCopy()
		ns.Status.Conditions = conds
		if ns, err = c.client.CoreV1().Namespaces().UpdateStatus(ctx, ns, metav1.UpdateOptions{}); err != nil {
			return ignoreNotFound(fmt.Errorf("update namespace %s conditions: %w", name, err))
		}
	}
	// Errors are retried with backoff; a partial discovery failure also
	// blocks finalization, since unseen groups may still hold content.
	if len(res.deleteErrs) > 0 {
		return fmt.Errorf("delete content of namespace %s: %w", name, errors.Join(res.deleteErrs...))
	}
	if res.discoveryErr != nil {
		return fmt.Errorf("discover resources of namespace %s: %w", name, res.discoveryErr)
	}
	if total(res.remaining) > 0 {
		c.loop.EnqueueAfter(name, c.recheck)
		return nil
	}

	fin := ns.DeepCopy()
	fin.Spec.Finalizers = slices.DeleteFunc(fin.Spec.Finalizers, func(f corev1.FinalizerName) bool { return f == corev1.FinalizerKubernetes })
	if _, err := c.client.CoreV1().Namespaces().Finalize(ctx, fin, metav1.UpdateOptions{}); err != nil {
		return ignoreNotFound(fmt.Errorf("finalize namespace %s: %w", name, err))
	}
	return nil
}

// deleteContent issues deletes for everything in namespace ns and reports
// what is left. Pods go first and the rest waits until they are gone, so
// terminating pods keep their service accounts, secrets and config maps (as
// upstream does).
func (c *Controller) deleteContent(ctx context.Context, ns string) contentResult {
	res := contentResult{remaining: map[schema.GroupVersionResource]int{}, finalizers: map[string]int{}}
	lists, err := c.discovery.ServerPreferredNamespacedResources()
	if err != nil {
		res.discoveryErr = discoveryMessage(err)
	}
	var pods []deletable
	var rest []deletable
	for _, rl := range lists {
		gv, err := schema.ParseGroupVersion(rl.GroupVersion)
		if err != nil {
			res.parseErrs = append(res.parseErrs, fmt.Errorf("parse group version %q: %w", rl.GroupVersion, err))
			continue
		}
		for _, r := range rl.APIResources {
			if !slices.Contains(r.Verbs, "delete") || !slices.Contains(r.Verbs, "list") {
				continue
			}
			d := deletable{gvr: gv.WithResource(r.Name), collection: slices.Contains(r.Verbs, "deletecollection")}
			if d.gvr.Group == "" && d.gvr.Resource == "pods" {
				pods = append(pods, d)
			} else {
				rest = append(rest, d)
			}
		}
	}
	for _, d := range pods {
		c.deleteResource(ctx, ns, d, &res)
	}
	if total(res.remaining) > 0 {
		return res
	}
	for _, d := range rest {
		c.deleteResource(ctx, ns, d, &res)
	}
	return res
}

// deletable is one namespaced resource and whether it supports
// deletecollection.
type deletable struct {
	gvr        schema.GroupVersionResource
	collection bool
}

// deleteResource deletes all objects of d in ns and records what remains in
// res.
func (c *Controller) deleteResource(ctx context.Context, ns string, d deletable, res *contentResult) {
	rc := c.metadata.Resource(d.gvr).Namespace(ns)
	// Background: the garbage collector removes dependents; we only need
	// the objects themselves gone.
	background := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &background}
	if d.collection {
		if err := rc.DeleteCollection(ctx, opts, metav1.ListOptions{}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsMethodNotSupported(err) {
			res.deleteErrs = append(res.deleteErrs, fmt.Errorf("%s: %w", d.gvr, err))
			return
		}
	}
	list, err := rc.List(ctx, metav1.ListOptions{})
	if err != nil {
		if !apierrors.IsNotFound(err) && !apierrors.IsMethodNotSupported(err) {
			res.deleteErrs = append(res.deleteErrs, fmt.Errorf("list %s: %w", d.gvr, err))
		}
		return
	}
	for i := range list.Items {
		item := &list.Items[i]
		if !d.collection && item.DeletionTimestamp == nil {
			if err := rc.Delete(ctx, item.Name, opts); err != nil && !apierrors.IsNotFound(err) {
				res.deleteErrs = append(res.deleteErrs, fmt.Errorf("delete %s %s: %w", d.gvr, item.Name, err))
			}
		}
		res.remaining[d.gvr]++
		for _, f := range item.Finalizers {
			res.finalizers[f]++
		}
	}
}

func total(m map[schema.GroupVersionResource]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// discoveryMessage turns a discovery error into the upstream condition text.
func discoveryMessage(err error) error {
	var derr *discovery.ErrGroupDiscoveryFailed
	if errors.As(err, &derr) {
		return fmt.Errorf("Discovery failed for some groups, %d failing: %w", len(derr.Groups), err) //nolint:staticcheck // upstream condition text is capitalised
	}
	return err
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
