package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
)

// Resource is the store of one resource type: every key starts with its
// prefix. It is safe for concurrent use.
type Resource struct {
	store   *Store
	prefix  string                // immutable; ends with "/"
	codec   Codec                 // immutable
	newFunc func() runtime.Object // immutable

	cacheMu sync.Mutex
	cache   *watchCache // started on first use; guarded by cacheMu
}

// Create stores obj under key if the key does not exist yet, and returns the
// stored object with metadata.resourceVersion set to the revision of the
// write. obj is not modified; a resourceVersion it carries is ignored. The
// error wraps ErrKeyExists if the key is present.
func (r *Resource) Create(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
	data, err := r.encode(obj)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", key, err)
	}
	resp, err := r.store.client.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(key), "=", 0),
	).Then(
		clientv3.OpPut(key, string(data)),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", key, wrapEtcdError(err))
	}
	if !resp.Succeeded {
		return nil, fmt.Errorf("create %s: %w", key, ErrKeyExists)
	}
	// Returning what decodes from the stored bytes (not obj) guarantees the
	// caller sees exactly what later reads will see.
	out, err := r.decode(data, resp.Header.Revision)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", key, err)
	}
	return out, nil
}

// Get returns the object at key with a linearizable read. The error wraps
// ErrNotFound if the key does not exist.
func (r *Resource) Get(ctx context.Context, key string) (runtime.Object, error) {
	kv, err := r.getKV(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	out, err := r.decode(kv.Value, kv.ModRevision)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return out, nil
}

// Update is a compare-and-swap loop: it reads the current object, calls
// tryUpdate with a copy of it (which tryUpdate may modify and return), and
// writes the result only if its encoding differs from the stored value and
// the key's mod_revision is unchanged. When another writer got there first it
// calls tryUpdate again with the newer object. A no-op update returns the
// current object, keeping its resourceVersion, without writing. Errors from
// tryUpdate are returned unchanged (unwrapped), so callers can return their
// own API errors; the error wraps ErrNotFound if key does not exist (also when
// it is deleted during the loop).
func (r *Resource) Update(ctx context.Context, key string, tryUpdate func(cur runtime.Object) (runtime.Object, error)) (runtime.Object, error) {
	kv, err := r.getKV(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("update %s: %w", key, err)
	}
	for {
		cur, err := r.decode(kv.Value, kv.ModRevision)
		if err != nil {
			return nil, fmt.Errorf("update %s: %w", key, err)
		}
		updated, err := tryUpdate(cur)
		if err != nil {
			return nil, err
		}
		data, err := r.encode(updated)
		if err != nil {
			return nil, fmt.Errorf("update %s: %w", key, err)
		}
		if bytes.Equal(data, kv.Value) {
			// Decode again: tryUpdate owned and may have kept cur.
			out, err := r.decode(kv.Value, kv.ModRevision)
			if err != nil {
				return nil, fmt.Errorf("update %s: %w", key, err)
			}
			return out, nil
		}
		resp, err := r.store.client.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision),
		).Then(
			clientv3.OpPut(key, string(data)),
		).Else(
			clientv3.OpGet(key),
		).Commit()
		if err != nil {
			return nil, fmt.Errorf("update %s: %w", key, wrapEtcdError(err))
		}
		if resp.Succeeded {
			out, err := r.decode(data, resp.Header.Revision)
			if err != nil {
				return nil, fmt.Errorf("update %s: %w", key, err)
			}
			return out, nil
		}
		// Lost the race: the Else branch already read the winner's value.
		if kv, err = kvFromTxnElse(resp, key); err != nil {
			return nil, fmt.Errorf("update %s: %w", key, err)
		}
	}
}

// Delete removes key once precondition (nil means none) accepts the current
// object; a concurrent change makes it re-read and re-run the precondition.
// It returns the object's last state with resourceVersion set to the
// revision of the deletion, which is also the resourceVersion of the DELETED
// watch event. Errors from precondition are returned unchanged; the error
// wraps ErrNotFound if key does not exist.
func (r *Resource) Delete(ctx context.Context, key string, precondition func(cur runtime.Object) error) (runtime.Object, error) {
	kv, err := r.getKV(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("delete %s: %w", key, err)
	}
	for {
		if precondition != nil {
			cur, err := r.decode(kv.Value, kv.ModRevision)
			if err != nil {
				return nil, fmt.Errorf("delete %s: %w", key, err)
			}
			if err := precondition(cur); err != nil {
				return nil, err
			}
		}
		resp, err := r.store.client.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision),
		).Then(
			clientv3.OpDelete(key),
		).Else(
			clientv3.OpGet(key),
		).Commit()
		if err != nil {
			return nil, fmt.Errorf("delete %s: %w", key, wrapEtcdError(err))
		}
		if resp.Succeeded {
			out, err := r.decode(kv.Value, resp.Header.Revision)
			if err != nil {
				return nil, fmt.Errorf("delete %s: %w", key, err)
			}
			return out, nil
		}
		if kv, err = kvFromTxnElse(resp, key); err != nil {
			return nil, fmt.Errorf("delete %s: %w", key, err)
		}
	}
}

// CurrentRevision returns etcd's latest revision; see Store.CurrentRevision.
func (r *Resource) CurrentRevision(ctx context.Context) (int64, error) {
	return r.store.CurrentRevision(ctx)
}

func (r *Resource) getKV(ctx context.Context, key string) (*mvccpb.KeyValue, error) {
	resp, err := r.store.client.Get(ctx, key)
	if err != nil {
		return nil, wrapEtcdError(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, ErrNotFound
	}
	return resp.Kvs[0], nil
}

// kvFromTxnElse extracts the value read by a failed compare-and-swap's Else
// OpGet.
func kvFromTxnElse(resp *clientv3.TxnResponse, key string) (*mvccpb.KeyValue, error) {
	if len(resp.Responses) == 0 {
		return nil, fmt.Errorf("empty transaction response for %s", key)
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return nil, ErrNotFound
	}
	return kvs[0], nil
}

// encode returns the stored form of obj: without a resourceVersion, since the
// revision is only known after the write and etcd's mod_revision is the truth.
func (r *Resource) encode(obj runtime.Object) ([]byte, error) {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	if acc.GetResourceVersion() != "" {
		// Copy rather than clear in place: obj belongs to the caller.
		obj = obj.DeepCopyObject()
		acc, err = meta.Accessor(obj)
		if err != nil {
			return nil, err
		}
		acc.SetResourceVersion("")
	}
	return r.codec.Encode(obj)
}

// decode returns a new object from a stored value, with resourceVersion rev.
func (r *Resource) decode(data []byte, rev int64) (runtime.Object, error) {
	obj, err := r.codec.Decode(data)
	if err != nil {
		return nil, err
	}
	if err := setResourceVersion(obj, rev); err != nil {
		return nil, err
	}
	return obj, nil
}

func setResourceVersion(obj runtime.Object, rev int64) error {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	acc.SetResourceVersion(strconv.FormatInt(rev, 10))
	return nil
}

// wrapEtcdError maps etcd's revision errors onto this package's sentinels,
// keeping the original error in the chain.
func wrapEtcdError(err error) error {
	switch {
	case isCompacted(err):
		return fmt.Errorf("%w: %w", ErrExpired, err)
	case errors.Is(err, rpctypes.ErrFutureRev):
		return fmt.Errorf("%w: %w", ErrTooLargeResourceVersion, err)
	}
	return err
}

func isCompacted(err error) bool {
	return errors.Is(err, rpctypes.ErrCompacted)
}
