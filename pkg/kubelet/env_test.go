package kubelet

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func envPod(env []corev1.EnvVar, envFrom []corev1.EnvFromSource) *corev1.Pod {
	pod := nginxPod(corev1.RestartPolicyAlways)
	pod.Spec.Containers[0].Env = env
	pod.Spec.Containers[0].EnvFrom = envFrom
	return pod
}

func TestEnvReferencesAreResolvedBeforeTheRuntime(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t,
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "default"},
			Data: map[string]string{"MODE": "fast", "LEVEL": "3", "bad-name": "x", "PRICE": "$(MODE)$5"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: "default"},
			Data: map[string][]byte{"password": []byte("s3cret")}},
	)
	yes := true
	pod := envPod([]corev1.EnvVar{
		{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "password"}}},
		{Name: "OPT", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "missing", Optional: &yes}}},
		{Name: "OPTCM", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "k", Optional: &yes}}},
		{Name: "CFG_LEVEL", Value: "override"},
		{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
	}, []corev1.EnvFromSource{
		{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}},
		{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Optional: &yes}},
	})
	h.seedPod(t, pod)
	if err := h.k.syncPod(ctx, "default/web"); err != nil {
		t.Fatal(err)
	}
	got := h.rt.lastSynced(pod.UID).Spec.Containers[0]
	want := []corev1.EnvVar{
		// envFrom first, by name, without the names env redefines;
		// values are protected from $(VAR) expansion. Names with
		// dashes are valid since relaxed env var validation.
		{Name: "CFG_MODE", Value: "fast"},
		{Name: "CFG_PRICE", Value: "$$(MODE)$$5"},
		{Name: "CFG_bad-name", Value: "x"},
		{Name: "PASSWORD", Value: "s3cret"},
		{Name: "CFG_LEVEL", Value: "override"},
		{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
	}
	if diff := cmp.Diff(want, got.Env); diff != "" {
		t.Errorf("env handed to the runtime (-want +got):\n%s", diff)
	}
	if len(got.EnvFrom) != 0 {
		t.Errorf("envFrom handed to the runtime: %v", got.EnvFrom)
	}
	if len(pod.Spec.Containers[0].EnvFrom) != 2 {
		t.Error("the cached pod was modified")
	}
	if st := h.refreshCache(t, "default", "web").Status; st.Phase != corev1.PodRunning {
		t.Errorf("phase = %s, want Running", st.Phase)
	}
}

func TestMissingRequiredReferenceIsCreateContainerConfigError(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		env     []corev1.EnvVar
		envFrom []corev1.EnvFromSource
		want    string
	}{
		{name: "missing configmap", env: []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "k"}}}},
			want: `configmap "nope" not found`},
		{name: "missing key", env: []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "k"}}}},
			want: "couldn't find key k in ConfigMap default/cfg"},
		{name: "missing secret in envFrom", envFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}}},
			want: `secret "s" not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "default"}})
			h.seedPod(t, envPod(tc.env, tc.envFrom))
			if err := h.k.syncPod(ctx, "default/web"); err != nil {
				t.Fatal(err)
			}
			st := h.refreshCache(t, "default", "web").Status
			w := st.ContainerStatuses[0].State.Waiting
			if w == nil || w.Reason != ReasonCreateContainerConfigError || w.Message != tc.want {
				t.Errorf("waiting = %+v, want %s: %s", w, ReasonCreateContainerConfigError, tc.want)
			}
			if diff := cmp.Diff([]string{"Pod/web Failed spec.containers{nginx}: Error: " + tc.want}, h.rec.take()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}
