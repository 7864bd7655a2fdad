package kubelet

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// nodeNameIndex indexes pods by spec.nodeName.
const nodeNameIndex = "nodeName"

// PodSource is the kubelet's view of the pods bound to nodes: one pod
// informer, indexed by spec.nodeName, whose events are routed to the kubelet
// registered for the pod's node. A PodSource may serve many kubelets in one
// process (`skiff sim`), so that a thousand hollow nodes share one watch and
// one cache instead of opening a thousand.
//
// The zero value is not usable; create one with NewPodSource. Methods are
// safe for concurrent use.
type PodSource struct {
	informer cache.SharedIndexInformer // immutable; never nil

	mu sync.RWMutex
	// handlers maps a node name to the function that enqueues a pod key
	// for that node's kubelet; guarded by mu.
	handlers map[string]func(key string)
}

// NewPodSource returns a PodSource over the pods of client. With nodeName
// set, it watches only pods with spec.nodeName=nodeName (one real kubelet);
// with nodeName empty it watches all pods (many kubelets in one process).
// The source does nothing until Run.
func NewPodSource(client kubernetes.Interface, nodeName string) *PodSource {
	var tweak func(*metav1.ListOptions)
	if nodeName != "" {
		sel := fields.OneTermEqualSelector("spec.nodeName", nodeName).String()
		tweak = func(o *metav1.ListOptions) { o.FieldSelector = sel }
	}
	// The generated informer (rather than a hand-made ListWatch) lets
	// client-go pick list+watch or watch-list per client, which fake
	// clientsets in tests depend on.
	inf := coreinformers.NewFilteredPodInformer(client, metav1.NamespaceAll, 0, cache.Indexers{
		nodeNameIndex: func(obj interface{}) ([]string, error) {
			pod, ok := obj.(*corev1.Pod)
			if !ok || pod.Spec.NodeName == "" {
				return nil, nil
			}
			return []string{pod.Spec.NodeName}, nil
		},
	}, tweak)
	// managedFields are never read by the kubelet and are a large share of
	// each cached pod: dropping them keeps 100,000 cached pods affordable.
	_ = inf.SetTransform(func(obj interface{}) (interface{}, error) {
		if m, ok := obj.(metav1.Object); ok {
			m.SetManagedFields(nil)
		}
		return obj, nil
	})
	s := &PodSource{informer: inf, handlers: map[string]func(string){}}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: s.route,
		UpdateFunc: func(oldObj, newObj interface{}) {
			// nodeName only changes from "" to a node (binding), so the
			// new object names the only interested kubelet.
			s.route(newObj)
		},
		DeleteFunc: s.route,
	})
	return s
}

// Run runs the informer until ctx is done.
func (s *PodSource) Run(ctx context.Context) { s.informer.RunWithContext(ctx) }

// HasSynced reports whether the initial list has been delivered.
func (s *PodSource) HasSynced() bool { return s.informer.HasSynced() }

// route hands a pod event to the kubelet of the pod's node, if any.
func (s *PodSource) route(obj interface{}) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Spec.NodeName == "" {
		return
	}
	s.mu.RLock()
	h := s.handlers[pod.Spec.NodeName]
	s.mu.RUnlock()
	if h != nil {
		h(pod.Namespace + "/" + pod.Name)
	}
}

// register routes events of pods bound to nodeName to enqueue until the
// returned function is called. One handler per node.
func (s *PodSource) register(nodeName string, enqueue func(key string)) (unregister func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.handlers[nodeName]; dup {
		return nil, fmt.Errorf("pod source: node %q already has a kubelet", nodeName)
	}
	s.handlers[nodeName] = enqueue
	return func() {
		s.mu.Lock()
		delete(s.handlers, nodeName)
		s.mu.Unlock()
	}, nil
}

// podsOn returns the cached pods bound to nodeName. The pods are shared
// with the cache and must not be modified.
func (s *PodSource) podsOn(nodeName string) []*corev1.Pod {
	objs, err := s.informer.GetIndexer().ByIndex(nodeNameIndex, nodeName)
	if err != nil {
		utilruntime.HandleError(fmt.Errorf("pod source: listing pods of node %q: %w", nodeName, err))
		return nil
	}
	pods := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok {
			pods = append(pods, p)
		}
	}
	return pods
}

// get returns the cached pod with key "namespace/name". The pod is shared
// with the cache and must not be modified.
func (s *PodSource) get(key string) (*corev1.Pod, bool) {
	obj, exists, err := s.informer.GetIndexer().GetByKey(key)
	if err != nil || !exists {
		return nil, false
	}
	pod, ok := obj.(*corev1.Pod)
	return pod, ok
}

// add puts pod into the cache directly; tests use it to seed the source
// without running the informer.
func (s *PodSource) add(pod *corev1.Pod) error {
	return s.informer.GetIndexer().Add(pod)
}
