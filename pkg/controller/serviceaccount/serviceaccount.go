// Package serviceaccount keeps a "default" ServiceAccount in every active
// namespace, recreating it if it is deleted, like upstream's
// serviceaccount-controller.
package serviceaccount

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-project/skiff/pkg/controller"
)

// Name is the controller's name in logs and queue metrics.
const Name = "serviceaccount-controller"

// DefaultName is the name of the ServiceAccount ensured in every namespace.
const DefaultName = "default"

// Controller ensures the default ServiceAccount exists in every active
// namespace. Its queue holds namespace names.
type Controller struct {
	client   kubernetes.Interface             // immutable; never nil
	nsLister corelisters.NamespaceLister      // immutable; never nil
	saLister corelisters.ServiceAccountLister // immutable; never nil
	synced   []cache.InformerSynced           // immutable
	loop     *controller.Loop                 // immutable; never nil
}

// New returns a Controller that watches namespaces and ServiceAccounts
// through factory. The caller starts factory; Run waits for its caches.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory) (*Controller, error) {
	nsInformer := factory.Core().V1().Namespaces()
	saInformer := factory.Core().V1().ServiceAccounts()
	c := &Controller{
		client:   client,
		nsLister: nsInformer.Lister(),
		saLister: saInformer.Lister(),
		synced:   []cache.InformerSynced{nsInformer.Informer().HasSynced, saInformer.Informer().HasSynced},
	}
	c.loop = controller.NewLoop(Name, c.sync)
	if _, err := nsInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.loop.Enqueue,
		UpdateFunc: func(_, obj interface{}) { c.loop.Enqueue(obj) },
	}); err != nil {
		return nil, fmt.Errorf("add namespace handler: %w", err)
	}
	// Only a deleted (or changed) default ServiceAccount needs action; its
	// namespace is the key.
	saHandler := func(obj interface{}) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		sa, ok := obj.(*corev1.ServiceAccount)
		if !ok || sa.Name != DefaultName {
			return
		}
		c.loop.EnqueueKey(sa.Namespace)
	}
	if _, err := saInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj interface{}) { saHandler(obj) },
		DeleteFunc: saHandler,
	}); err != nil {
		return nil, fmt.Errorf("add serviceaccount handler: %w", err)
	}
	return c, nil
}

// Run waits for the informer caches and then syncs namespaces with workers
// goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	if !cache.WaitForNamedCacheSync(Name, ctx.Done(), c.synced...) {
		return
	}
	c.loop.Run(ctx, workers)
}

// sync creates the default ServiceAccount in namespace ns when ns is active
// and the account is missing.
func (c *Controller) sync(ctx context.Context, ns string) error {
	namespace, err := c.nsLister.Get(ns)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get namespace %s: %w", ns, err)
	}
	if !needsDefault(namespace, c.saLister) {
		return nil
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: DefaultName, Namespace: ns}}
	_, err = c.client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{})
	if err == nil || apierrors.IsAlreadyExists(err) {
		return nil
	}
	return fmt.Errorf("create %s/%s: %w", ns, DefaultName, err)
}

// needsDefault reports whether namespace is active and lacks the default
// ServiceAccount according to lister.
func needsDefault(namespace *corev1.Namespace, lister corelisters.ServiceAccountLister) bool {
	if namespace.DeletionTimestamp != nil || namespace.Status.Phase == corev1.NamespaceTerminating {
		return false
	}
	_, err := lister.ServiceAccounts(namespace.Name).Get(DefaultName)
	return apierrors.IsNotFound(err)
}
