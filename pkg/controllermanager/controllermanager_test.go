package controllermanager

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/kubernetes/fake"
	metadatafake "k8s.io/client-go/metadata/fake"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestEnabledControllers(t *testing.T) {
	reg := map[string]initFunc{"deployment": nil, "replicaset": nil, "namespace": nil}
	tests := []struct {
		name    string
		list    []string
		want    []string
		wantErr bool
	}{
		{name: "nil enables all", list: nil, want: []string{"deployment", "namespace", "replicaset"}},
		{name: "explicit list", list: []string{"replicaset", "deployment"}, want: []string{"deployment", "replicaset"}},
		{name: "star minus one", list: []string{"*", "-namespace"}, want: []string{"deployment", "replicaset"}},
		{name: "empty list enables none", list: []string{}, want: nil},
		{name: "unknown name", list: []string{"deployments"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := enabledControllers(tt.list, reg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("enabled (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRegistryNames(t *testing.T) {
	got, err := enabledControllers(nil, registry())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"clusterrole-aggregation", "cronjob", "daemonset", "deployment", "disruption", "endpoint", "endpointslice", "garbagecollector",
		"horizontalpodautoscaling", "job", "namespace", "nodeipam", "nodelifecycle", "replicaset", "replicationcontroller",
		"resourcequota", "root-ca-cert-publisher", "serviceaccount", "statefulset", "ttlafterfinished"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("registered controllers (-want +got):\n%s", diff)
	}
}

// TestRunControllersStopsCleanly starts every registered controller against
// a fake clientset and checks that cancelling returns (all goroutines
// joined) without error.
func TestRunControllersStopsCleanly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	client := fake.NewClientset()
	enabled, err := enabledControllers(nil, registry())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- runControllers(ctx, client, metadatafake.NewSimpleMetadataClient(metadatafake.NewTestScheme()), Options{Clock: clocktesting.NewFakeClock(time.Unix(1700000000, 0))}, enabled)
	}()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("runControllers: %v", err)
	}
}

func TestRunRequiresConfig(t *testing.T) {
	if err := Run(context.Background(), Options{}); err == nil {
		t.Error("Run without Config succeeded")
	}
}
