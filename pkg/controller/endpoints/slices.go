package endpoints

import (
	"context"
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/skiff-project/skiff/pkg/controller"
)

// SliceEventSource is the component the EndpointSlice controller's events
// are recorded under.
const SliceEventSource = "endpointslice-controller"

// ReasonFailedToUpdateEndpointSlices is the warning recorded on a Service
// whose slices could not be written, as upstream.
const ReasonFailedToUpdateEndpointSlices = "FailedToUpdateEndpointSlices"

// SliceController keeps the EndpointSlices of every selector Service. Create
// it with NewSliceController and start it with Run.
type SliceController struct {
	client      kubernetes.Interface                 // immutable
	svcLister   corelisters.ServiceLister            // immutable
	podLister   corelisters.PodLister                // immutable
	sliceLister discoverylisters.EndpointSliceLister // immutable
	recorder    record.EventRecorder                 // immutable; reports as SliceEventSource
	clock       clock.PassiveClock                   // immutable
	tracker     *sliceTracker                        // internally synchronised
	loop        *controller.Loop                     // immutable
	maxPerSlice int                                  // immutable
	synced      []cache.InformerSynced
}

// NewSliceController returns the EndpointSlice controller and registers its
// handlers on the informers; the caller starts the informers, then calls
// Run.
func NewSliceController(client kubernetes.Interface, svcInformer coreinformers.ServiceInformer, podInformer coreinformers.PodInformer, sliceInformer discoveryinformers.EndpointSliceInformer, recorder record.EventRecorder, clk clock.PassiveClock) (*SliceController, error) {
	c := &SliceController{
		client:      client,
		svcLister:   svcInformer.Lister(),
		podLister:   podInformer.Lister(),
		sliceLister: sliceInformer.Lister(),
		recorder:    recorder,
		clock:       clk,
		tracker:     newSliceTracker(),
		maxPerSlice: MaxEndpointsPerSlice,
	}
	c.loop = controller.NewLoop("endpointslice", c.sync)
	if err := register(c.loop, &c.synced, svcInformer.Informer(), podInformer.Informer(), svcInformer.Lister()); err != nil {
		return nil, err
	}
	inf := sliceInformer.Informer()
	enqueueSlice := func(obj interface{}, deleted bool) {
		s, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok {
			tomb, ok := obj.(cache.DeletedFinalStateUnknown)
			if !ok {
				return
			}
			if s, ok = tomb.Obj.(*discoveryv1.EndpointSlice); !ok {
				return
			}
		}
		if s.Labels[discoveryv1.LabelManagedBy] != ManagedBy || s.Labels[discoveryv1.LabelServiceName] == "" {
			return
		}
		key := s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]
		if deleted {
			// Whoever deleted it, a slice that is gone can no longer catch
			// up with a write we expect to see.
			c.tracker.gone(key, s.Name)
		}
		c.loop.EnqueueKey(key)
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { enqueueSlice(obj, false) },
		UpdateFunc: func(_, cur interface{}) { enqueueSlice(cur, false) },
		DeleteFunc: func(obj interface{}) { enqueueSlice(obj, true) },
	}); err != nil {
		return nil, fmt.Errorf("watching endpointslices: %w", err)
	}
	c.synced = append(c.synced, inf.HasSynced)
	return c, nil
}

// Run waits for the informer caches, then syncs services with workers
// goroutines until ctx is done.
func (c *SliceController) Run(ctx context.Context, workers int) error {
	if !cache.WaitForNamedCacheSync(c.loop.Name(), ctx.Done(), c.synced...) {
		return fmt.Errorf("%s: caches did not sync: %w", c.loop.Name(), ctx.Err())
	}
	c.loop.Run(ctx, workers)
	return nil
}

// errStaleCache is returned when the slice cache does not yet show this
// controller's own earlier writes; planning from it would duplicate slices.
var errStaleCache = errors.New("endpointslice cache does not yet reflect earlier writes")

func (c *SliceController) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return controller.Terminal(fmt.Errorf("invalid key %q: %w", key, err))
	}
	svc, err := c.svcLister.Services(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		// The slices' owner reference hands them to the garbage collector.
		c.tracker.forget(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading service %s: %w", key, err)
	}
	if svc.DeletionTimestamp != nil {
		return nil
	}
	pods, managed, err := selectedPods(c.podLister, svc)
	if err != nil || !managed {
		return err
	}
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: ManagedBy})
	all, err := c.sliceLister.EndpointSlices(namespace).List(sel)
	if err != nil {
		return fmt.Errorf("listing endpointslices of %s: %w", key, err)
	}
	if c.tracker.stale(key, all) {
		return fmt.Errorf("syncing %s: %w", key, errStaleCache)
	}
	var owned []*discoveryv1.EndpointSlice
	for _, s := range all {
		// A slice another service's owner reference claims is not ours to
		// rewrite, even if its labels say so.
		if ref := metav1.GetControllerOf(s); ref == nil || ref.UID == svc.UID {
			owned = append(owned, s)
		}
	}

	plan := PlanSlices(svc, pods, owned, c.maxPerSlice)
	if plan.Empty() {
		return nil
	}
	trigger := ""
	if t := triggerTime(svc, pods); !t.IsZero() {
		trigger = formatTriggerTime(t)
	}
	err = c.apply(ctx, key, plan, trigger)
	if err != nil && !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		c.recorder.Eventf(svc, corev1.EventTypeWarning, ReasonFailedToUpdateEndpointSlices, "Error updating Endpoint Slices for Service %s/%s: %v", namespace, name, err)
	}
	return err
}

// apply performs plan: creates and updates first so a Service never passes
// through a moment with fewer endpoints than before, deletes last.
func (c *SliceController) apply(ctx context.Context, key string, plan SlicePlan, trigger string) error {
	api := c.client.DiscoveryV1().EndpointSlices
	setTrigger := func(s *discoveryv1.EndpointSlice) {
		if trigger == "" {
			return
		}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[LastChangeTriggerTimeAnnotation] = trigger
	}
	for _, s := range plan.Create {
		setTrigger(s)
		created, err := api(s.Namespace).Create(ctx, s, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating endpointslice for %s: %w", key, err)
		}
		c.tracker.expect(key, created.Name, created.Generation)
	}
	for _, s := range plan.Update {
		setTrigger(s)
		updated, err := api(s.Namespace).Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("updating endpointslice %s/%s: %w", s.Namespace, s.Name, err)
		}
		c.tracker.expect(key, updated.Name, updated.Generation)
	}
	for _, s := range plan.Delete {
		uid := s.UID
		err := api(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting endpointslice %s/%s: %w", s.Namespace, s.Name, err)
		}
		c.tracker.expectDeleted(key, s.Name, s.UID)
	}
	return nil
}

// sliceTracker remembers, per service key, the slice generations this
// controller wrote and the slices it deleted, until the informer cache shows
// them. A write not yet visible means the cache is stale for that service.
type sliceTracker struct {
	mu      sync.Mutex
	written map[string]map[string]int64     // guarded by mu; service → slice → min generation
	deleted map[string]map[string]types.UID // guarded by mu; service → slice → uid
}

func newSliceTracker() *sliceTracker {
	return &sliceTracker{written: map[string]map[string]int64{}, deleted: map[string]map[string]types.UID{}}
}

func (t *sliceTracker) expect(svcKey, slice string, generation int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.written[svcKey] == nil {
		t.written[svcKey] = map[string]int64{}
	}
	t.written[svcKey][slice] = generation
	delete(t.deleted[svcKey], slice)
}

func (t *sliceTracker) expectDeleted(svcKey, slice string, uid types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.deleted[svcKey] == nil {
		t.deleted[svcKey] = map[string]types.UID{}
	}
	t.deleted[svcKey][slice] = uid
	delete(t.written[svcKey], slice)
}

// gone drops any expectation about slice, observed deleted.
func (t *sliceTracker) gone(svcKey, slice string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.written[svcKey], slice)
	delete(t.deleted[svcKey], slice)
}

func (t *sliceTracker) forget(svcKey string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.written, svcKey)
	delete(t.deleted, svcKey)
}

// stale reports whether cached, the slices the cache holds for svcKey, lags
// behind writes this controller made; expectations the cache satisfies are
// dropped.
func (t *sliceTracker) stale(svcKey string, cached []*discoveryv1.EndpointSlice) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	byName := make(map[string]*discoveryv1.EndpointSlice, len(cached))
	for _, s := range cached {
		byName[s.Name] = s
	}
	stale := false
	for name, gen := range t.written[svcKey] {
		if s, ok := byName[name]; ok && s.Generation >= gen {
			delete(t.written[svcKey], name)
		} else {
			stale = true
		}
	}
	for name, uid := range t.deleted[svcKey] {
		if s, ok := byName[name]; ok && s.UID == uid {
			stale = true
		} else {
			delete(t.deleted[svcKey], name)
		}
	}
	if len(t.written[svcKey]) == 0 {
		delete(t.written, svcKey)
	}
	if len(t.deleted[svcKey]) == 0 {
		delete(t.deleted, svcKey)
	}
	return stale
}
