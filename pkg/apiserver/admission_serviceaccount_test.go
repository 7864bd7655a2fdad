package apiserver

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestServiceAccountVolumeShape pins the volume to upstream's, field for
// field, as `kubectl get pod -o yaml` shows it on a kubeadm cluster.
func TestServiceAccountVolumeShape(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "init"}},
		Containers: []corev1.Container{
			{Name: "app", VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}},
			// A container with its own token at the path keeps it.
			{Name: "own", VolumeMounts: []corev1.VolumeMount{{Name: "mine", MountPath: serviceAccountMountPath}}},
		},
		Volumes: []corev1.Volume{{Name: "data"}, {Name: "mine"}},
	}}
	mountServiceAccountToken(pod, "kube-api-access-x7k2q")
	got, err := yaml.Marshal(pod.Spec)
	if err != nil {
		t.Fatal(err)
	}
	want := `containers:
- name: app
  resources: {}
  volumeMounts:
  - mountPath: /data
    name: data
  - mountPath: /var/run/secrets/kubernetes.io/serviceaccount
    name: kube-api-access-x7k2q
    readOnly: true
- name: own
  resources: {}
  volumeMounts:
  - mountPath: /var/run/secrets/kubernetes.io/serviceaccount
    name: mine
initContainers:
- name: init
  resources: {}
  volumeMounts:
  - mountPath: /var/run/secrets/kubernetes.io/serviceaccount
    name: kube-api-access-x7k2q
    readOnly: true
volumes:
- name: data
- name: mine
- name: kube-api-access-x7k2q
  projected:
    defaultMode: 420
    sources:
    - serviceAccountToken:
        expirationSeconds: 3607
        path: token
    - configMap:
        items:
        - key: ca.crt
          path: ca.crt
        name: kube-root-ca.crt
    - downwardAPI:
        items:
        - fieldRef:
            apiVersion: v1
            fieldPath: metadata.namespace
          path: namespace
`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("pod spec (-want +got):\n%s", diff)
	}

	// Admitting again (an existing kube-api-access- volume) adds nothing.
	before := pod.DeepCopy()
	mountServiceAccountToken(pod, "kube-api-access-other")
	if diff := cmp.Diff(before, pod); diff != "" {
		t.Errorf("second admission changed the pod (-before +after):\n%s", diff)
	}
}

func TestAutomount(t *testing.T) {
	yes, no := new(true), new(false)
	tests := []struct {
		pod, sa *bool
		want    bool
	}{
		{nil, nil, true},
		{nil, no, false},
		{yes, no, true},
		{no, yes, false},
		{no, nil, false},
	}
	for _, tt := range tests {
		pod := &corev1.Pod{Spec: corev1.PodSpec{AutomountServiceAccountToken: tt.pod}}
		sa := &corev1.ServiceAccount{AutomountServiceAccountToken: tt.sa}
		if got := automount(sa, pod); got != tt.want {
			t.Errorf("automount(pod %v, sa %v) = %v, want %v", ptrString(tt.pod), ptrString(tt.sa), got, tt.want)
		}
	}
}

func ptrString(b *bool) string {
	if b == nil {
		return "unset"
	}
	if *b {
		return "true"
	}
	return "false"
}
