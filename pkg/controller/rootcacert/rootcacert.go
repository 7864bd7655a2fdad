// Package rootcacert is upstream's root CA certificate publisher: it keeps
// a ConfigMap "kube-root-ca.crt" whose "ca.crt" is the cluster CA bundle
// in every namespace, so pods can verify the API server (the
// ServiceAccount admission plugin projects it into every pod).
package rootcacert

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-project/skiff/pkg/controller"
)

// Name is the controller's name in logs and queue metrics, upstream's.
const Name = "root-ca-cert-publisher"

// ConfigMapName is the ConfigMap kept in every namespace; DataKey holds the
// PEM bundle in it.
const (
	ConfigMapName = "kube-root-ca.crt"
	DataKey       = "ca.crt"
)

// The annotation upstream puts on the ConfigMap to say what it is for.
const (
	descriptionAnnotation = "kubernetes.io/description"
	description           = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. " +
		"No other usage is guaranteed across distributions of Kubernetes clusters."
)

// Controller publishes the CA bundle. Its queue holds namespace names.
type Controller struct {
	client   kubernetes.Interface        // immutable; never nil
	rootCA   string                      // immutable; the PEM bundle
	nsLister corelisters.NamespaceLister // immutable; never nil
	cmLister corelisters.ConfigMapLister // immutable; never nil
	loop     *controller.Loop            // immutable; never nil
}

// New returns a Controller publishing rootCA (PEM; must not be empty) with
// the given informers; the caller starts them.
func New(client kubernetes.Interface, rootCA []byte, nsInformer coreinformers.NamespaceInformer, cmInformer coreinformers.ConfigMapInformer) (*Controller, error) {
	if len(rootCA) == 0 {
		return nil, errors.New("root CA publisher: no CA bundle")
	}
	c := &Controller{client: client, rootCA: string(rootCA), nsLister: nsInformer.Lister(), cmLister: cmInformer.Lister()}
	c.loop = controller.NewLoop(Name, c.sync)
	if err := c.loop.Watch(nsInformer.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc:    c.loop.Enqueue,
		UpdateFunc: func(_, obj interface{}) { c.loop.Enqueue(obj) },
	}); err != nil {
		return nil, fmt.Errorf("watch namespaces: %w", err)
	}
	// A changed or deleted published ConfigMap is put back; its namespace
	// is the key.
	cmChanged := func(obj interface{}) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if cm, ok := obj.(*corev1.ConfigMap); ok && cm.Name == ConfigMapName {
			c.loop.EnqueueKey(cm.Namespace)
		}
	}
	if err := c.loop.Watch(cmInformer.Informer(), cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj interface{}) { cmChanged(obj) },
		DeleteFunc: cmChanged,
	}); err != nil {
		return nil, fmt.Errorf("watch configmaps: %w", err)
	}
	return c, nil
}

// Run waits for the informer caches, then syncs namespaces with workers
// goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.loop.RunSynced(ctx, workers)
}

// sync makes the ConfigMap of namespace ns hold the bundle and the
// description annotation; namespaces that are gone or terminating are left
// alone.
func (c *Controller) sync(ctx context.Context, ns string) error {
	namespace, err := c.nsLister.Get(ns)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get namespace %s: %w", ns, err)
	}
	if namespace.DeletionTimestamp != nil || namespace.Status.Phase == corev1.NamespaceTerminating {
		return nil
	}
	want := map[string]string{DataKey: c.rootCA}
	cm, err := c.cmLister.ConfigMaps(ns).Get(ConfigMapName)
	switch {
	case apierrors.IsNotFound(err):
		_, err = c.client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Annotations: map[string]string{descriptionAnnotation: description}},
			Data:       want,
		}, metav1.CreateOptions{})
		// A namespace deleted or terminating meanwhile needs nothing.
		if err == nil || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err) || apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) ||
			(apierrors.IsForbidden(err) && namespaceTerminatingMessage(err)) {
			return nil
		}
		return fmt.Errorf("create %s/%s: %w", ns, ConfigMapName, err)
	case err != nil:
		return fmt.Errorf("get configmap %s/%s: %w", ns, ConfigMapName, err)
	}
	if maps.Equal(cm.Data, want) && cm.Annotations[descriptionAnnotation] != "" {
		return nil
	}
	cm = cm.DeepCopy()
	cm.Data = want
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[descriptionAnnotation] = description
	if _, err := c.client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("update %s/%s: %w", ns, ConfigMapName, err)
	}
	return nil
}

// namespaceTerminatingMessage recognises the API server's refusal to
// create objects in a terminating namespace.
func namespaceTerminatingMessage(err error) bool {
	return strings.Contains(err.Error(), "because it is being terminated")
}
