package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/skiff-project/skiff/pkg/storage"
)

func TestPutLeasedExpires(t *testing.T) {
	ctx := context.Background()
	s := storage.New(startEmbedded(t).Client(), storage.Options{})
	defer s.Close()
	if err := s.PutLeased(ctx, "/registry/masterleases/10.0.0.1", []byte("10.0.0.1"), time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.PutLeased(ctx, "/registry/masterleases/10.0.0.2", []byte("10.0.0.2"), time.Hour); err != nil {
		t.Fatal(err)
	}
	vals, err := s.Values(ctx, "/registry/masterleases/")
	if err != nil || len(vals) != 2 || string(vals[0]) != "10.0.0.1" || string(vals[1]) != "10.0.0.2" {
		t.Fatalf("Values = %q, %v; want both addresses in key order", vals, err)
	}
	// The short lease expires on its own; the long one stays.
	deadline := time.Now().Add(10 * time.Second)
	for {
		vals, err = s.Values(ctx, "/registry/masterleases/")
		if err == nil && len(vals) == 1 && string(vals[0]) == "10.0.0.2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the 1s lease: Values = %q, %v; want only 10.0.0.2", vals, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := s.DeleteKey(ctx, "/registry/masterleases/10.0.0.2"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteKey(ctx, "/registry/masterleases/absent"); err != nil {
		t.Fatalf("deleting a missing key: %v", err)
	}
	if vals, err = s.Values(ctx, "/registry/masterleases/"); err != nil || len(vals) != 0 {
		t.Fatalf("after DeleteKey: %q, %v", vals, err)
	}
}
