package imagelocality

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
	"github.com/skiff-project/skiff/pkg/scheduler/internal/cache"
	st "github.com/skiff-project/skiff/pkg/scheduler/internal/testutil"
)

func TestScore(t *testing.T) {
	nodes := []*v1.Node{
		st.MakeNode("has-big").Image(500*mb, "big:latest").Obj(),
		st.MakeNode("has-small").Image(10*mb, "busybox:latest").Obj(),
		st.MakeNode("empty").Obj(),
	}
	pod := st.MakePod("p").Obj()
	pod.Spec.Containers[0].Image = "big"
	want := map[string]int64{
		// 500MB on 1 of 3 nodes → 166MB; (166-23)/(1000-23) → 14.
		"has-big":   14,
		"has-small": 0,
		"empty":     0,
	}
	snap := cache.NewSnapshot(nil, nodes)
	cs := framework.NewCycleState()
	pl := New()
	pl.PreScore(context.Background(), cs, pod, snap.List(), snap.List())
	got := map[string]int64{}
	for _, ni := range snap.List() {
		s, _ := pl.Score(context.Background(), cs, pod, ni)
		got[ni.Node().Name] = s
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("scores (-want +got):\n%s", diff)
	}
}

func TestNormalizedImageName(t *testing.T) {
	for in, want := range map[string]string{
		"nginx":                 "nginx:latest",
		"nginx:1.25":            "nginx:1.25",
		"localhost:5000/app":    "localhost:5000/app:latest",
		"repo/app@sha256:abcd":  "repo/app@sha256:abcd",
		"registry.k8s.io/pause": "registry.k8s.io/pause:latest",
	} {
		if diff := cmp.Diff(want, NormalizedImageName(in)); diff != "" {
			t.Errorf("NormalizedImageName(%q) (-want +got):\n%s", in, diff)
		}
	}
}
