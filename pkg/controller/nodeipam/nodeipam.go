// Package nodeipam gives every node a pod CIDR (spec.podCIDR and
// spec.podCIDRs) carved out of the cluster CIDR, like upstream's node-ipam
// controller with the range allocator. The CNI bridge/host-local plugins on
// the node read it to address pods.
package nodeipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/controller"
)

// Name is the controller's name in logs and queue metrics.
const Name = "node-ipam-controller"

// EventSource is the component name upstream uses for this controller's
// events; callers should build the recorder with it.
const EventSource = "cidrAllocator"

// Defaults for Options.
const (
	DefaultClusterCIDR  = "10.244.0.0/16"
	DefaultNodeMaskSize = 24
)

// Options configure the controller. The zero value means the defaults.
type Options struct {
	// ClusterCIDR is the range pod CIDRs are carved from; default
	// DefaultClusterCIDR.
	ClusterCIDR string
	// NodeMaskSize is the prefix length of each node's pod CIDR; default
	// DefaultNodeMaskSize.
	NodeMaskSize int
}

// Controller assigns pod CIDRs to nodes. Its queue holds node names.
type Controller struct {
	client   kubernetes.Interface   // immutable; never nil
	lister   corelisters.NodeLister // immutable; never nil
	synced   cache.InformerSynced   // immutable; never nil
	recorder record.EventRecorder   // immutable; never nil
	loop     *controller.Loop       // immutable; never nil

	mu    sync.Mutex // guards alloc
	alloc *allocator // guarded by mu
}

// New returns a Controller watching nodes through factory. It fails when
// opts describe an invalid range. The caller starts factory.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, recorder record.EventRecorder, opts Options) (*Controller, error) {
	if opts.ClusterCIDR == "" {
		opts.ClusterCIDR = DefaultClusterCIDR
	}
	if opts.NodeMaskSize == 0 {
		opts.NodeMaskSize = DefaultNodeMaskSize
	}
	cluster, err := netip.ParsePrefix(opts.ClusterCIDR)
	if err != nil {
		return nil, fmt.Errorf("parse cluster CIDR: %w", err)
	}
	alloc, err := newAllocator(cluster, opts.NodeMaskSize)
	if err != nil {
		return nil, err
	}
	nodes := factory.Core().V1().Nodes()
	c := &Controller{
		client:   client,
		lister:   nodes.Lister(),
		synced:   nodes.Informer().HasSynced,
		recorder: recorder,
		alloc:    alloc,
	}
	c.loop = controller.NewLoop(Name, c.sync)
	if _, err := nodes.Informer().AddEventHandler(c.loop.Handlers()); err != nil {
		return nil, fmt.Errorf("add node handler: %w", err)
	}
	return c, nil
}

// Run waits for the node cache, rebuilds the allocation table from the pod
// CIDRs nodes already carry (so a restart never hands out a CIDR twice), and
// then syncs nodes with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	if !cache.WaitForNamedCacheSync(Name, ctx.Done(), c.synced) {
		return
	}
	nodes, err := c.lister.List(labels.Everything())
	if err != nil {
		utilruntime.HandleError(fmt.Errorf("list nodes: %w", err))
		return
	}
	c.rebuild(ctx, nodes)
	c.loop.Run(ctx, workers)
}

// rebuild marks every pod CIDR the nodes carry as used.
func (c *Controller) rebuild(ctx context.Context, nodes []*corev1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range nodes {
		c.occupyLocked(ctx, n)
	}
}

// occupyLocked records n's existing pod CIDR(s); c.mu must be held.
func (c *Controller) occupyLocked(ctx context.Context, n *corev1.Node) {
	cidrs := n.Spec.PodCIDRs
	if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
		cidrs = []string{n.Spec.PodCIDR}
	}
	for _, s := range cidrs {
		p, err := netip.ParsePrefix(s)
		if err != nil || !c.alloc.occupy(n.Name, p) {
			klog.FromContext(ctx).V(2).Info("node pod CIDR is outside the cluster CIDR, not tracked", "node", n.Name, "podCIDR", s)
		}
	}
}

// sync gives node name a pod CIDR if it has none, and releases the CIDR of a
// node that no longer exists.
func (c *Controller) sync(ctx context.Context, name string) error {
	node, err := c.lister.Get(name)
	if apierrors.IsNotFound(err) {
		c.mu.Lock()
		c.alloc.release(name)
		c.mu.Unlock()
		return nil
	}
	if err != nil {
		return fmt.Errorf("get node %s: %w", name, err)
	}
	c.mu.Lock()
	if node.Spec.PodCIDR != "" || len(node.Spec.PodCIDRs) > 0 {
		c.occupyLocked(ctx, node)
		c.mu.Unlock()
		return nil
	}
	cidr, err := c.alloc.allocate(name)
	c.mu.Unlock()
	if errors.Is(err, ErrExhausted) {
		c.recorder.Eventf(nodeRef(name), corev1.EventTypeNormal, "CIDRNotAvailable", "Node %s status is now: %s", name, "CIDRNotAvailable")
		return fmt.Errorf("allocate pod CIDR for node %s: %w", name, err)
	}
	if err != nil {
		return fmt.Errorf("allocate pod CIDR for node %s: %w", name, err)
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{
		"podCIDR":  cidr.String(),
		"podCIDRs": []string{cidr.String()},
	}})
	if err != nil {
		return fmt.Errorf("encode pod CIDR patch: %w", err)
	}
	if _, err := c.client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			c.mu.Lock()
			c.alloc.release(name)
			c.mu.Unlock()
			return nil
		}
		// Keep the reservation: the retry reuses it, and a later sync
		// that finds the node gone releases it.
		return fmt.Errorf("set pod CIDR %s on node %s: %w", cidr, name, err)
	}
	return nil
}

// nodeRef is the object reference upstream uses for node events (the UID is
// the node name, so events survive node re-creation).
func nodeRef(name string) *corev1.ObjectReference {
	return &corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: name, UID: types.UID(name)}
}
