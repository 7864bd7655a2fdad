package storage_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/skiff-project/skiff/pkg/storage"
	"github.com/skiff-project/skiff/pkg/storage/storagetest"
)

// startEmbedded starts a private embedded etcd for one test.
func startEmbedded(tb testing.TB) *storage.Embedded {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := storage.StartEmbedded(ctx, storage.EmbeddedConfig{DataDir: filepath.Join(tb.TempDir(), "etcd")})
	if err != nil {
		tb.Fatalf("StartEmbedded: %v", err)
	}
	tb.Cleanup(func() {
		if err := e.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return e
}

func TestStoreEmbedded(t *testing.T) {
	e := startEmbedded(t)
	storagetest.RunStoreSuite(t, e.Client())
}

func TestStoreExternalEtcd(t *testing.T) {
	client := storagetest.StartEtcdProcess(t)
	storagetest.RunStoreSuite(t, client)
}

// TestEmbeddedStartTime guards the headline number: `skiff server` must be
// ready in under a second, and etcd is on that path.
func TestEmbeddedStartTime(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	for _, run := range []string{"fresh", "restart"} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := time.Now()
		e, err := storage.StartEmbedded(ctx, storage.EmbeddedConfig{DataDir: dir})
		if err != nil {
			cancel()
			t.Fatalf("%s: StartEmbedded: %v", run, err)
		}
		if _, err := e.Client().Put(ctx, "/probe", run); err != nil {
			t.Errorf("%s: first write: %v", run, err)
		}
		elapsed := time.Since(start)
		cancel()
		if err := e.Close(); err != nil {
			t.Errorf("%s: Close: %v", run, err)
		}
		t.Logf("%s start to first write: %v", run, elapsed)
		if elapsed > time.Second {
			t.Errorf("%s start took %v, want < 1s", run, elapsed)
		}
	}
}
