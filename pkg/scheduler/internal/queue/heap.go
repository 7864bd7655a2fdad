package queue

import (
	"container/heap"

	"k8s.io/apimachinery/pkg/types"
)

// podHeap is a binary heap of queued pods with O(log n) update and delete
// by UID. It is not safe for concurrent use; PriorityQueue guards it.
type podHeap struct {
	items []*QueuedPodInfo
	index map[types.UID]int
	less  func(a, b *QueuedPodInfo) bool
}

func newPodHeap(less func(a, b *QueuedPodInfo) bool) *podHeap {
	return &podHeap{index: map[types.UID]int{}, less: less}
}

// heapImpl adapts podHeap to container/heap without exporting its methods.
type heapImpl struct{ h *podHeap }

func (x heapImpl) Len() int           { return len(x.h.items) }
func (x heapImpl) Less(i, j int) bool { return x.h.less(x.h.items[i], x.h.items[j]) }
func (x heapImpl) Swap(i, j int) {
	h := x.h
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.index[h.items[i].Pod.UID] = i
	h.index[h.items[j].Pod.UID] = j
}
func (x heapImpl) Push(v any) {
	qp := v.(*QueuedPodInfo)
	x.h.index[qp.Pod.UID] = len(x.h.items)
	x.h.items = append(x.h.items, qp)
}
func (x heapImpl) Pop() any {
	h := x.h
	last := len(h.items) - 1
	qp := h.items[last]
	h.items[last] = nil
	h.items = h.items[:last]
	delete(h.index, qp.Pod.UID)
	return qp
}

func (h *podHeap) len() int { return len(h.items) }

// addOrUpdate inserts qp or replaces the entry with the same UID.
func (h *podHeap) addOrUpdate(qp *QueuedPodInfo) {
	if i, ok := h.index[qp.Pod.UID]; ok {
		h.items[i] = qp
		heap.Fix(heapImpl{h}, i)
		return
	}
	heap.Push(heapImpl{h}, qp)
}

func (h *podHeap) get(uid types.UID) (*QueuedPodInfo, bool) {
	i, ok := h.index[uid]
	if !ok {
		return nil, false
	}
	return h.items[i], true
}

func (h *podHeap) delete(uid types.UID) bool {
	i, ok := h.index[uid]
	if !ok {
		return false
	}
	heap.Remove(heapImpl{h}, i)
	return true
}

func (h *podHeap) peek() *QueuedPodInfo {
	if len(h.items) == 0 {
		return nil
	}
	return h.items[0]
}

func (h *podHeap) pop() *QueuedPodInfo {
	if len(h.items) == 0 {
		return nil
	}
	return heap.Pop(heapImpl{h}).(*QueuedPodInfo)
}
