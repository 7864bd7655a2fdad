package criruntime

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-project/skiff/pkg/kubelet/volume"
)

// fakeMounter resolves volume "v" to /host/v[/subPath], read-only for
// "ro"; any other volume is an error.
type fakeMounter struct{}

func (fakeMounter) HostMount(_ *corev1.Pod, vm corev1.VolumeMount) (volume.Mount, error) {
	switch vm.Name {
	case "v", "ro":
		p := "/host/" + vm.Name
		if vm.SubPath != "" {
			p += "/" + vm.SubPath
		}
		return volume.Mount{HostPath: p, ReadOnly: vm.ReadOnly || vm.Name == "ro"}, nil
	}
	return volume.Mount{}, errors.New("no such volume")
}

func TestContainerMounts(t *testing.T) {
	r := &Runtime{cfg: Config{Volumes: fakeMounter{}}}
	pod := &corev1.Pod{}
	c := &corev1.Container{VolumeMounts: []corev1.VolumeMount{
		{Name: "v", MountPath: "/data"},
		{Name: "ro", MountPath: "/etc/cfg"},
		{Name: "v", MountPath: "/logs", SubPathExpr: "$(POD)/logs", MountPropagation: new(corev1.MountPropagationHostToContainer)},
	}}
	got, err := r.containerMounts(pod, c, map[string]string{"POD": "web"})
	if err != nil {
		t.Fatal(err)
	}
	want := []*runtimeapi.Mount{
		{ContainerPath: "/data", HostPath: "/host/v", Propagation: runtimeapi.MountPropagation_PROPAGATION_PRIVATE},
		{ContainerPath: "/etc/cfg", HostPath: "/host/ro", Readonly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_PRIVATE},
		{ContainerPath: "/logs", HostPath: "/host/v/web/logs", Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}

	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "missing", MountPath: "/x"})
	if _, err := r.containerMounts(pod, c, nil); err == nil {
		t.Error("a mount of an unknown volume produced no error")
	}
	if got, err := (&Runtime{}).containerMounts(pod, c, nil); err != nil || got != nil {
		t.Errorf("without Config.Volumes: %v, %v; want no mounts", got, err)
	}
}
