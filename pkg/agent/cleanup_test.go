package agent

import (
	"context"
	"errors"
	"slices"
	"testing"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-project/skiff/pkg/containerd"
)

// busyRuntime is a CRI runtime whose pods refuse removal a few times, as
// containerd does for a container still being started.
type busyRuntime struct {
	internalapi.RuntimeService // only the methods below are called
	pods                       []*runtimeapi.PodSandbox
	refusals                   map[string]int // pod ID → removals to refuse
	stops                      []string
}

func (b *busyRuntime) ListPodSandbox(context.Context, *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	return b.pods, nil
}

func (b *busyRuntime) StopPodSandbox(_ context.Context, id string) error {
	b.stops = append(b.stops, id)
	return nil
}

func (b *busyRuntime) RemovePodSandbox(_ context.Context, id string) error {
	if b.refusals[id] > 0 {
		b.refusals[id]--
		return errors.New("container is in starting state, can't be removed")
	}
	return nil
}

func TestRemoveAllPodsRetriesPodsStillStarting(t *testing.T) {
	rt := &busyRuntime{
		pods: []*runtimeapi.PodSandbox{
			{Id: "a", Metadata: &runtimeapi.PodSandboxMetadata{Uid: "uid-a"}},
			{Id: "b", Metadata: &runtimeapi.PodSandboxMetadata{Uid: "uid-b"}},
		},
		refusals: map[string]int{"b": 2},
	}
	uids, err := removeAllPods(context.Background(), &containerd.Conn{Runtime: rt})
	if err != nil {
		t.Fatalf("removeAllPods: %v", err)
	}
	if !slices.Equal(uids, []string{"uid-a", "uid-b"}) {
		t.Errorf("uids = %v", uids)
	}
	// b is stopped again before each new removal: a container that
	// finished starting after the first stop must not survive.
	if want := []string{"a", "b", "b", "b"}; !slices.Equal(rt.stops, want) {
		t.Errorf("stops = %v, want %v", rt.stops, want)
	}
}

func TestNFTTableEmpty(t *testing.T) {
	empty := `table ip nat { # handle 6
	chain POSTROUTING { # handle 4
		type nat hook postrouting priority srcnat; policy accept;
	}

	chain OUTPUT { # handle 2871
		type nat hook output priority -100; policy accept;
	}
}
`
	if !nftTableEmpty(empty) {
		t.Error("a table of empty base chains is not empty")
	}
	withRule := `table ip nat { # handle 6
	chain POSTROUTING { # handle 4
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 10.88.0.0/16 counter packets 0 bytes 0 masquerade # handle 9
	}
}
`
	withChain := `table ip filter { # handle 12
	chain CNI-FORWARD { # handle 15
	}
}
`
	withSet := `table ip nat { # handle 6
	set allowed { # handle 3
		type ipv4_addr
	}
}
`
	for name, listing := range map[string]string{"a rule": withRule, "a set": withSet, "a regular chain": withChain} {
		if nftTableEmpty(listing) {
			t.Errorf("a table with %s counts as empty", name)
		}
	}
}
