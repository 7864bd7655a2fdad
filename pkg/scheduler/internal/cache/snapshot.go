package cache

import (
	"sort"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
)

// Snapshot is an immutable-per-cycle copy of the cache's NodeInfos. The
// scheduler keeps one Snapshot and refreshes it in place at the start of each
// cycle with Cache.UpdateSnapshot, which copies only NodeInfos whose
// generation changed since the previous refresh.
//
// A Snapshot is used by one scheduling cycle at a time and is not safe for
// concurrent refresh and reads.
type Snapshot struct {
	nodeInfoMap map[string]*framework.NodeInfo
	// nodeInfoList holds the NodeInfos of nodes that exist, sorted by name so
	// that an identical cluster gives an identical list.
	nodeInfoList []*framework.NodeInfo
	generation   int64
}

// NewEmptySnapshot returns a snapshot with no nodes, ready for UpdateSnapshot.
func NewEmptySnapshot() *Snapshot {
	return &Snapshot{nodeInfoMap: map[string]*framework.NodeInfo{}}
}

// NewSnapshot builds a snapshot directly from objects; pods whose
// spec.nodeName names none of nodes are ignored. For tests and benchmarks.
func NewSnapshot(pods []*v1.Pod, nodes []*v1.Node) *Snapshot {
	s := NewEmptySnapshot()
	images := map[string]*imageState{}
	for _, n := range nodes {
		addNodeImages(images, n)
	}
	for _, n := range nodes {
		ni := framework.NewNodeInfo()
		ni.SetNode(n)
		ni.ImageStates = imageSummaries(images, n)
		s.nodeInfoMap[n.Name] = ni
	}
	for _, p := range pods {
		if ni, ok := s.nodeInfoMap[p.Spec.NodeName]; ok {
			ni.AddPodInfo(framework.NewPodInfo(p))
		}
	}
	s.rebuildList()
	return s
}

// List returns every node's NodeInfo. The slice must not be modified.
func (s *Snapshot) List() []*framework.NodeInfo { return s.nodeInfoList }

// Get returns the NodeInfo of the named node.
func (s *Snapshot) Get(name string) (*framework.NodeInfo, bool) {
	ni, ok := s.nodeInfoMap[name]
	return ni, ok
}

// NumNodes returns the number of nodes in the snapshot.
func (s *Snapshot) NumNodes() int { return len(s.nodeInfoList) }

func (s *Snapshot) rebuildList() {
	s.nodeInfoList = s.nodeInfoList[:0]
	for _, ni := range s.nodeInfoMap {
		s.nodeInfoList = append(s.nodeInfoList, ni)
	}
	sort.Slice(s.nodeInfoList, func(i, j int) bool {
		return s.nodeInfoList[i].Node().Name < s.nodeInfoList[j].Node().Name
	})
}
