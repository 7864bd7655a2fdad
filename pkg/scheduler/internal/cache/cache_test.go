package cache

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	st "github.com/skiff-project/skiff/pkg/scheduler/internal/testutil"
)

func TestAssumeForgetAndSnapshot(t *testing.T) {
	c := New()
	c.AddNode(st.MakeNode("n1").Capacity("4", "8Gi", 110).Obj())
	c.AddNode(st.MakeNode("n2").Capacity("4", "8Gi", 110).Obj())
	snap := NewEmptySnapshot()
	requested := func() map[string]int64 {
		c.UpdateSnapshot(snap)
		out := map[string]int64{}
		for _, ni := range snap.List() {
			out[ni.Node().Name] = ni.Requested.MilliCPU
		}
		return out
	}
	if diff := cmp.Diff(map[string]int64{"n1": 0, "n2": 0}, requested()); diff != "" {
		t.Errorf("empty (-want +got):\n%s", diff)
	}
	p := st.MakePod("p").Req("1", "").Node("n1").Obj()
	if err := c.AssumePod(p); err != nil {
		t.Fatalf("AssumePod: %v", err)
	}
	if diff := cmp.Diff(map[string]int64{"n1": 1000, "n2": 0}, requested()); diff != "" {
		t.Errorf("assumed pod visible to next snapshot (-want +got):\n%s", diff)
	}
	if err := c.ForgetPod(p); err != nil {
		t.Fatalf("ForgetPod: %v", err)
	}
	if diff := cmp.Diff(map[string]int64{"n1": 0, "n2": 0}, requested()); diff != "" {
		t.Errorf("after forget (-want +got):\n%s", diff)
	}
	// Confirmed by the informer: no longer assumed, survives ForgetPod.
	if err := c.AssumePod(p); err != nil {
		t.Fatalf("AssumePod: %v", err)
	}
	if err := c.AddPod(p); err != nil {
		t.Fatalf("AddPod: %v", err)
	}
	if err := c.ForgetPod(p); err != nil {
		t.Fatalf("ForgetPod: %v", err)
	}
	if diff := cmp.Diff(map[string]int64{"n1": 1000, "n2": 0}, requested()); diff != "" {
		t.Errorf("confirmed pod (-want +got):\n%s", diff)
	}
	if err := c.RemoveNode(st.MakeNode("n2").Obj()); err != nil {
		t.Fatalf("RemoveNode: %v", err)
	}
	if diff := cmp.Diff(map[string]int64{"n1": 1000}, requested()); diff != "" {
		t.Errorf("after node removal (-want +got):\n%s", diff)
	}
}
