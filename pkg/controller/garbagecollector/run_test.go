package garbagecollector

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	metadatafake "k8s.io/client-go/metadata/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
)

// TestRunCollectsOrphanedReplicaSet runs the whole collector (discovery,
// metadata informers, queue) against a fake API holding a ReplicaSet whose
// Deployment is gone, and checks the ReplicaSet is deleted and Run returns
// once its context is cancelled.
func TestRunCollectsOrphanedReplicaSet(t *testing.T) {
	scheme := metadatafake.NewTestScheme()
	if err := metav1.AddMetaToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	rs := obj("apps/v1", "ReplicaSet", "default", "web-1", "rs1", ownedBy("apps/v1", "Deployment", "web", "d1", true))
	meta := metadatafake.NewSimpleMetadataClient(scheme, rs)
	deleted := make(chan string, 1)
	meta.PrependReactor("delete", "replicasets", func(a clienttesting.Action) (bool, runtime.Object, error) {
		select {
		case deleted <- a.(clienttesting.DeleteAction).GetName():
		default:
		}
		return false, nil, nil
	})
	c, err := New(nil, meta, record.NewFakeRecorder(10), Options{Discovery: discovered()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx, 2)
	}()
	select {
	case name := <-deleted:
		if name != "web-1" {
			t.Errorf("deleted %q, want web-1", name)
		}
	case <-time.After(30 * time.Second): // failure guard only, not synchronisation
		t.Error("replicaset was not collected")
	}
	cancel()
	<-done
}
