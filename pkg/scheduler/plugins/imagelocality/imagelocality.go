// Package imagelocality implements ImageLocality: prefer nodes that already
// have the pod's images, weighted by image size and discounted for images
// present on most nodes (so that it does not herd pods onto one node).
package imagelocality

import (
	"context"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
)

// Name is the plugin name.
const Name = "ImageLocality"

// Thresholds from upstream: below minThreshold the image counts as absent;
// maxContainerThreshold caps the per-container contribution.
const (
	mb                    int64 = 1024 * 1024
	minThreshold                = 23 * mb
	maxContainerThreshold       = 1000 * mb
)

const stateKey framework.StateKey = Name

type state struct{ totalNodes int }

func (s *state) Clone() framework.StateData { return s }

// ImageLocality is stateless across cycles.
type ImageLocality struct{}

var (
	_ framework.PreScorePlugin = &ImageLocality{}
	_ framework.ScorePlugin    = &ImageLocality{}
)

// New returns the plugin.
func New() *ImageLocality { return &ImageLocality{} }

// Name implements framework.Plugin.
func (*ImageLocality) Name() string { return Name }

// PreScore records the cluster size for the spread discount.
func (*ImageLocality) PreScore(_ context.Context, cs *framework.CycleState, _ *v1.Pod, _, all []*framework.NodeInfo) *framework.Status {
	cs.Write(stateKey, &state{totalNodes: len(all)})
	return nil
}

// Score is 100 * (sum - min) / (max - min) where sum adds, per container
// image on the node, size * (nodes having it / all nodes), clamped.
func (*ImageLocality) Score(_ context.Context, cs *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo) (int64, *framework.Status) {
	total := 1
	if d, ok := cs.Read(stateKey); ok {
		total = max(d.(*state).totalNodes, 1)
	}
	var sum int64
	n := 0
	for _, cs := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			n++
			if st, ok := ni.ImageStates[NormalizedImageName(c.Image)]; ok {
				sum += int64(float64(st.Size) * float64(st.NumNodes) / float64(total))
			}
		}
	}
	maxThreshold := maxContainerThreshold * int64(max(n, 1))
	sum = min(max(sum, minThreshold), maxThreshold)
	return framework.MaxNodeScore * (sum - minThreshold) / (maxThreshold - minThreshold), nil
}

// ScoreExtensions returns nil: scores are already in range.
func (*ImageLocality) ScoreExtensions() framework.ScoreExtensions { return nil }

// NormalizedImageName appends ":latest" to an image with neither tag nor
// digest, the form nodes report.
func NormalizedImageName(name string) string {
	if strings.LastIndex(name, ":") <= strings.LastIndex(name, "/") && !strings.Contains(name, "@") {
		return name + ":latest"
	}
	return name
}
