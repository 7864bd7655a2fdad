// Package cache is the scheduler's in-memory model of the cluster: nodes and
// the pods bound — or assumed bound — to them. Informer handlers write it; the
// scheduling loop reads it through cheap incremental Snapshots.
package cache

import (
	"fmt"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
)

// nodeItem is one node in the cache's most-recently-updated-first list;
// walking from the head until a generation older than the snapshot's finds
// exactly the nodes that changed.
type nodeItem struct {
	info       *framework.NodeInfo
	prev, next *nodeItem
}

type podState struct {
	pod *v1.Pod
	// assumed is true from AssumePod until the informer confirms the binding.
	assumed bool
	// bindingFinished is set by FinishBinding (the API call returned).
	bindingFinished bool
}

type imageState struct {
	size  int64
	nodes map[string]struct{}
}

// Cache is safe for concurrent use.
type Cache struct {
	mu sync.RWMutex
	// All fields below are guarded by mu.
	nodes     map[string]*nodeItem
	head      *nodeItem
	nodeCount int // nodes whose Node object exists
	pods      map[types.UID]*podState
	images    map[string]*imageState
	// generation is the last generation handed to a NodeInfo.
	generation int64
}

// New returns an empty cache.
func New() *Cache {
	return &Cache{
		nodes:  map[string]*nodeItem{},
		pods:   map[types.UID]*podState{},
		images: map[string]*imageState{},
	}
}

// touch gives item a new generation and moves it to the head of the list.
// Caller holds mu.
func (c *Cache) touch(item *nodeItem) {
	c.generation++
	item.info.Generation = c.generation
	if c.head == item {
		return
	}
	if item.prev != nil {
		item.prev.next = item.next
	}
	if item.next != nil {
		item.next.prev = item.prev
	}
	item.prev = nil
	item.next = c.head
	if c.head != nil {
		c.head.prev = item
	}
	c.head = item
}

// unlink removes item from the list and the map. Caller holds mu.
func (c *Cache) unlink(name string, item *nodeItem) {
	if item.prev != nil {
		item.prev.next = item.next
	}
	if item.next != nil {
		item.next.prev = item.prev
	}
	if c.head == item {
		c.head = item.next
	}
	delete(c.nodes, name)
}

// item returns the item for a node, creating it (without a Node) if absent.
func (c *Cache) item(name string) *nodeItem {
	it, ok := c.nodes[name]
	if !ok {
		it = &nodeItem{info: framework.NewNodeInfo()}
		c.nodes[name] = it
		c.touch(it)
	}
	return it
}

// AddNode adds or replaces a node.
func (c *Cache) AddNode(node *v1.Node) { c.UpdateNode(nil, node) }

// UpdateNode replaces the node object.
func (c *Cache) UpdateNode(_, node *v1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it := c.item(node.Name)
	if old := it.info.Node(); old != nil {
		removeNodeImages(c.images, old)
	} else {
		c.nodeCount++
	}
	addNodeImages(c.images, node)
	it.info.SetNode(node)
	it.info.ImageStates = imageSummaries(c.images, node)
	c.touch(it)
}

// RemoveNode forgets a node. Pods still on it keep their accounting until
// their own delete events arrive, so a node re-created with the same name
// does not briefly look empty.
func (c *Cache) RemoveNode(node *v1.Node) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.nodes[node.Name]
	if !ok || it.info.Node() == nil {
		return fmt.Errorf("removing node %q: not in cache", node.Name)
	}
	removeNodeImages(c.images, it.info.Node())
	it.info.RemoveNode()
	c.nodeCount--
	if len(it.info.Pods) == 0 {
		c.unlink(node.Name, it)
		return nil
	}
	c.touch(it)
	return nil
}

// addPodLocked accounts pod on its node. Caller holds mu.
func (c *Cache) addPodLocked(pod *v1.Pod, assumed bool) {
	it := c.item(pod.Spec.NodeName)
	it.info.AddPodInfo(framework.NewPodInfo(pod))
	c.touch(it)
	c.pods[pod.UID] = &podState{pod: pod, assumed: assumed}
}

// removePodLocked undoes addPodLocked. Caller holds mu.
func (c *Cache) removePodLocked(pod *v1.Pod) error {
	delete(c.pods, pod.UID)
	it, ok := c.nodes[pod.Spec.NodeName]
	if !ok {
		return fmt.Errorf("removing pod %s/%s: node %q not in cache", pod.Namespace, pod.Name, pod.Spec.NodeName)
	}
	if err := it.info.RemovePod(pod); err != nil {
		return fmt.Errorf("removing pod from cache: %w", err)
	}
	if len(it.info.Pods) == 0 && it.info.Node() == nil {
		c.unlink(pod.Spec.NodeName, it)
		return nil
	}
	c.touch(it)
	return nil
}

// AssumePod accounts pod (whose spec.nodeName is the chosen node) before the
// binding is confirmed, so that the next cycle already sees its resources.
// It fails if the pod is already in the cache.
func (c *Cache) AssumePod(pod *v1.Pod) error {
	if pod.Spec.NodeName == "" {
		return fmt.Errorf("assuming pod %s/%s: no node name", pod.Namespace, pod.Name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pods[pod.UID]; ok {
		return fmt.Errorf("assuming pod %s/%s: already in cache", pod.Namespace, pod.Name)
	}
	c.addPodLocked(pod, true)
	return nil
}

// FinishBinding records that the bind call for an assumed pod returned.
func (c *Cache) FinishBinding(pod *v1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps, ok := c.pods[pod.UID]; ok && ps.assumed {
		ps.bindingFinished = true
	}
}

// ForgetPod removes an assumed pod whose binding failed. It is a no-op for
// pods the informer already confirmed.
func (c *Cache) ForgetPod(pod *v1.Pod) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps, ok := c.pods[pod.UID]
	if !ok || !ps.assumed {
		return nil
	}
	return c.removePodLocked(ps.pod)
}

// IsAssumedPod reports whether pod is assumed and not yet confirmed.
func (c *Cache) IsAssumedPod(pod *v1.Pod) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ps, ok := c.pods[pod.UID]
	return ok && ps.assumed
}

// AddPod records a bound pod seen by the informer, confirming it if it was
// assumed (and moving it if it was bound elsewhere than assumed).
func (c *Cache) AddPod(pod *v1.Pod) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps, ok := c.pods[pod.UID]; ok {
		if err := c.removePodLocked(ps.pod); err != nil {
			return fmt.Errorf("confirming pod: %w", err)
		}
	}
	c.addPodLocked(pod, false)
	return nil
}

// UpdatePod replaces a bound pod's accounting with its new spec.
func (c *Cache) UpdatePod(_, pod *v1.Pod) error { return c.AddPod(pod) }

// RemovePod forgets a bound pod.
func (c *Cache) RemovePod(pod *v1.Pod) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps, ok := c.pods[pod.UID]
	if !ok {
		return fmt.Errorf("removing pod %s/%s: not in cache", pod.Namespace, pod.Name)
	}
	return c.removePodLocked(ps.pod)
}

// NodeCount returns the number of nodes; PodCount the number of pods.
func (c *Cache) NodeCount() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.nodeCount
}

// PodCount returns the number of pods, assumed ones included.
func (c *Cache) PodCount() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.pods)
}

// UpdateSnapshot brings s up to date, copying only NodeInfos changed since
// s was last updated. Cost is O(changed nodes), plus O(nodes) when nodes
// were added or removed.
func (c *Cache) UpdateSnapshot(s *Snapshot) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	rebuild := false
	for it := c.head; it != nil && it.info.Generation > s.generation; it = it.next {
		node := it.info.Node()
		if node == nil {
			continue // handled by the removal pass below
		}
		existing, ok := s.nodeInfoMap[node.Name]
		if !ok {
			existing = &framework.NodeInfo{}
			s.nodeInfoMap[node.Name] = existing
			rebuild = true
		}
		// Overwrite in place so that pointers held by nodeInfoList stay valid.
		*existing = *it.info.Clone()
	}
	if c.head != nil {
		s.generation = c.head.info.Generation
	}
	if len(s.nodeInfoMap) > c.nodeCount {
		for name := range s.nodeInfoMap {
			if it, ok := c.nodes[name]; !ok || it.info.Node() == nil {
				delete(s.nodeInfoMap, name)
			}
		}
		rebuild = true
	}
	if rebuild {
		s.rebuildList()
	}
}

func addNodeImages(images map[string]*imageState, node *v1.Node) {
	for _, img := range node.Status.Images {
		for _, name := range img.Names {
			st, ok := images[name]
			if !ok {
				st = &imageState{size: img.SizeBytes, nodes: map[string]struct{}{}}
				images[name] = st
			}
			st.nodes[node.Name] = struct{}{}
		}
	}
}

func removeNodeImages(images map[string]*imageState, node *v1.Node) {
	for _, img := range node.Status.Images {
		for _, name := range img.Names {
			if st, ok := images[name]; ok {
				delete(st.nodes, node.Name)
				if len(st.nodes) == 0 {
					delete(images, name)
				}
			}
		}
	}
}

// imageSummaries builds node's ImageStates. The spread count is as of now;
// like upstream it is not refreshed when other nodes change.
func imageSummaries(images map[string]*imageState, node *v1.Node) map[string]*framework.ImageStateSummary {
	out := make(map[string]*framework.ImageStateSummary, len(node.Status.Images))
	for _, img := range node.Status.Images {
		for _, name := range img.Names {
			if st, ok := images[name]; ok {
				out[name] = &framework.ImageStateSummary{Size: st.size, NumNodes: len(st.nodes)}
			}
		}
	}
	return out
}
