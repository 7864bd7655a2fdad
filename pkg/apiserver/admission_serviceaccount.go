package apiserver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilrand "k8s.io/apimachinery/pkg/util/rand"

	"github.com/skiff-project/skiff/pkg/storage"
)

// AdmissionServiceAccount is the name of the ServiceAccount admission
// plugin, as in upstream's --disable-admission-plugins.
const AdmissionServiceAccount = "ServiceAccount"

// Upstream's names for the API access volume.
const (
	// serviceAccountVolumePrefix starts the generated volume's name.
	serviceAccountVolumePrefix = "kube-api-access-"
	// serviceAccountMountPath is where every container finds the token,
	// the CA and its namespace.
	serviceAccountMountPath = "/var/run/secrets/kubernetes.io/serviceaccount"
	// rootCAConfigMap is the ConfigMap (kept in every namespace by the
	// root CA publisher) whose ca.crt verifies the API server.
	rootCAConfigMap = "kube-root-ca.crt"
)

// serviceAccount is upstream's ServiceAccount admission plugin for a pod
// being created: it defaults spec.serviceAccountName to "default", refuses
// a pod whose ServiceAccount does not exist, copies the account's
// imagePullSecrets to a pod without any, and (unless automounting is off
// for the pod or the account) adds the kube-api-access-xxxxx projected
// volume mounted read-only at /var/run/secrets/kubernetes.io/serviceaccount
// in every container. Mirror pods (static pods) are left alone.
func (c *admissionChain) serviceAccount(ctx context.Context, pod *corev1.Pod) error {
	if _, mirror := pod.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
		return nil
	}
	if pod.Spec.ServiceAccountName == "" {
		pod.Spec.ServiceAccountName = "default"
	}
	sa, err := c.lookupServiceAccount(ctx, pod.Namespace, pod.Spec.ServiceAccountName)
	if err != nil {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, pod.Name,
			fmt.Errorf("error looking up service account %s/%s: %w", pod.Namespace, pod.Spec.ServiceAccountName, err))
	}
	if automount(sa, pod) {
		mountServiceAccountToken(pod, serviceAccountVolumePrefix+utilrand.String(5))
	}
	if len(pod.Spec.ImagePullSecrets) == 0 && len(sa.ImagePullSecrets) > 0 {
		pod.Spec.ImagePullSecrets = append([]corev1.LocalObjectReference(nil), sa.ImagePullSecrets...)
	}
	return nil
}

// lookupServiceAccount finds ns/name in the watch cache, falling back to
// consistent reads: the "default" account is created by a controller just
// after its namespace, so it is retried for up to about two seconds, as
// upstream does.
func (c *admissionChain) lookupServiceAccount(ctx context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	ep, ok := c.s.lookup(coreServiceAccounts)
	if !ok {
		return nil, fmt.Errorf("no endpoint for %s", coreServiceAccounts)
	}
	key := ep.key(ns, name)
	res, err := ep.store.List(ctx, ep.listPrefix(ns), storage.ListOptions{ResourceVersion: "0",
		Predicate: func(o runtime.Object) bool { sa, ok := o.(*corev1.ServiceAccount); return ok && sa.Name == name }})
	if err == nil && len(res.Items) == 1 {
		return res.Items[0].(*corev1.ServiceAccount), nil
	}
	attempts := 1
	if name == "default" {
		attempts = 10
	}
	interval := time.Duration(100+rand.IntN(100)) * time.Millisecond
	for i := range attempts {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(interval):
			}
		}
		obj, err := ep.store.Get(ctx, key)
		if err == nil {
			return obj.(*corev1.ServiceAccount), nil
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return nil, storageError(err, ep.groupResource(), name)
		}
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "serviceaccount"}, name)
}

// automount is the pod's automountServiceAccountToken if set, else the
// account's, else true.
func automount(sa *corev1.ServiceAccount, pod *corev1.Pod) bool {
	if pod.Spec.AutomountServiceAccountToken != nil {
		return *pod.Spec.AutomountServiceAccountToken
	}
	if sa.AutomountServiceAccountToken != nil {
		return *sa.AutomountServiceAccountToken
	}
	return true
}

// mountServiceAccountToken mounts the API access volume in every init and
// regular container that has nothing at the mount path yet, adding the
// volume (named volumeName unless the pod already has a kube-api-access-
// volume) when a container needs it.
func mountServiceAccountToken(pod *corev1.Pod, volumeName string) {
	hasVolume := false
	for _, v := range pod.Spec.Volumes {
		if strings.HasPrefix(v.Name, serviceAccountVolumePrefix) {
			volumeName, hasVolume = v.Name, true
			break
		}
	}
	mount := corev1.VolumeMount{Name: volumeName, ReadOnly: true, MountPath: serviceAccountMountPath}
	needed := false
	add := func(containers []corev1.Container) {
		for i := range containers {
			mounted := false
			for _, m := range containers[i].VolumeMounts {
				mounted = mounted || m.MountPath == serviceAccountMountPath
			}
			if !mounted {
				containers[i].VolumeMounts = append(containers[i].VolumeMounts, mount)
				needed = true
			}
		}
	}
	add(pod.Spec.InitContainers)
	add(pod.Spec.Containers)
	if needed && !hasVolume {
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: volumeName,
			VolumeSource: corev1.VolumeSource{Projected: serviceAccountTokenVolume()}})
	}
}

// serviceAccountTokenVolume is upstream's projected API access volume: a
// token (3607 s, renewed by the kubelet), the cluster CA and the
// namespace. Every defaulted field is set explicitly, as upstream does,
// since the volume is added after defaulting.
func serviceAccountTokenVolume() *corev1.ProjectedVolumeSource {
	return &corev1.ProjectedVolumeSource{
		DefaultMode: new(corev1.ProjectedVolumeSourceDefaultMode),
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: new(int64(warnOnlyExpirationSeconds))}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: rootCAConfigMap},
				Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace",
				FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		},
	}
}
