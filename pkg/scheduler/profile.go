package scheduler

import (
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
	"github.com/skiff-project/skiff/pkg/scheduler/plugins/defaultpreemption"
	"github.com/skiff-project/skiff/pkg/scheduler/plugins/imagelocality"
	"github.com/skiff-project/skiff/pkg/scheduler/plugins/interpodaffinity"
	"github.com/skiff-project/skiff/pkg/scheduler/plugins/nodeaffinity"
	"github.com/skiff-project/skiff/pkg/scheduler/plugins/nodename"
	"github.com/skiff-project/skiff/pkg/scheduler/plugins/nodeports"
	"github.com/skiff-project/skiff/pkg/scheduler/plugins/noderesources"
	"github.com/skiff-project/skiff/pkg/scheduler/plugins/nodeunschedulable"
	"github.com/skiff-project/skiff/pkg/scheduler/plugins/podtopologyspread"
	"github.com/skiff-project/skiff/pkg/scheduler/plugins/tainttoleration"
)

// newDefaultFramework assembles upstream's default profile.
//
// Registration order is Filter order, and it is deliberate: a node is
// rejected by its first failing filter and only that reason is reported, so
// the order both saves work (cheap checks on node fields before per-pod
// arithmetic before cluster-wide topology) and matches upstream messages.
// The second argument is the Score weight (0: not scored), as upstream.
func newDefaultFramework(client kubernetes.Interface, nominator framework.PodNominator, parallelism int) *frameworkImpl {
	f := &frameworkImpl{client: client, nominator: nominator, parallelism: parallelism}
	f.register(nodeunschedulable.New(), 0) // one field
	f.register(nodename.New(), 0)          // one string compare
	f.register(tainttoleration.New(), 3)   // a few taints
	f.register(nodeaffinity.New(), 2)      // label selectors
	f.register(nodeports.New(), 0)         // map lookups, usually none
	f.register(noderesources.NewFit(), 1)  // arithmetic; LeastAllocated score
	f.register(podtopologyspread.New(), 2) // domain counts from PreFilter
	f.register(interpodaffinity.New(), 0)  // domain counts from PreFilter
	f.register(noderesources.NewBalancedAllocation(), 1)
	f.register(imagelocality.New(), 1)
	f.register(defaultpreemption.New(f), 0)
	return f
}
