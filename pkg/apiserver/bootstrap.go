package apiserver

import (
	"context"
	"fmt"
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// bootstrapManager is the field manager recorded on objects the server
// creates itself.
const bootstrapManager = "skiff-apiserver"

// bootstrap creates what every cluster has from its first second: the
// default namespaces, the built-in priority classes and the "kubernetes"
// Service with its Endpoints. Existing objects are left alone, so a restart
// changes nothing.
func (s *Server) bootstrap(ctx context.Context) error {
	opts := requestOptions{fieldManager: bootstrapManager}
	for _, name := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		if err := s.ensure(ctx, coreNamespaces, "", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, opts); err != nil {
			return err
		}
	}
	for name, value := range builtinPriorityClasses() {
		pc := &schedulingv1.PriorityClass{
			ObjectMeta:  metav1.ObjectMeta{Name: name},
			Value:       value,
			Description: "Used for system critical pods that must not be moved from their current node.",
		}
		if err := s.ensure(ctx, schedPriorityClasses, "", pc, opts); err != nil {
			return err
		}
	}
	host, portStr, err := net.SplitHostPort(s.cfg.ExternalAddress)
	if err != nil || net.ParseIP(host) == nil {
		return nil
	}
	port, _ := strconv.Atoi(portStr)
	firstIP := s.ips.ipAt(1)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default",
			Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}},
		Spec: corev1.ServiceSpec{
			ClusterIP: firstIP,
			Ports:     []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(int32(port))}},
		},
	}
	if err := s.ensure(ctx, coreServices, "default", svc, opts); err != nil {
		return err
	}
	eps := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default",
			Labels: map[string]string{"endpointslice.kubernetes.io/skip-mirror": "true"}},
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: host}},
			Ports:     []corev1.EndpointPort{{Name: "https", Port: int32(port), Protocol: corev1.ProtocolTCP}},
		}},
	}
	return s.ensure(ctx, schema.GroupVersionResource{Version: "v1", Resource: "endpoints"}, "default", eps, opts)
}

// ensure creates obj unless it already exists.
func (s *Server) ensure(ctx context.Context, gvr schema.GroupVersionResource, ns string, obj runtime.Object, opts requestOptions) error {
	ep, ok := s.lookup(gvr)
	if !ok {
		return fmt.Errorf("no endpoint for %s", gvr)
	}
	obj.GetObjectKind().SetGroupVersionKind(ep.res.GroupVersionKind())
	name := obj.(metav1.Object).GetName()
	if _, err := ep.store.Get(ctx, ep.key(ns, name)); err == nil {
		return nil
	}
	_, err := s.create(ctx, ep, ns, obj, opts)
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create %s: %w", gvr.Resource, err)
	}
	return nil
}
