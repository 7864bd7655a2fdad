package storage

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// freshnessTimeout bounds how long a request waits for the watch cache to
// reach a revision it asked for; upstream's cacher also waits three seconds
// before answering "too large resource version".
const freshnessTimeout = 3 * time.Second

// maxPageSize caps the batch size of a filtered paged list, which grows
// while the predicate rejects items (as upstream does).
const maxPageSize = 10000

// ListOptions select what List returns; field semantics follow metav1.ListOptions.
type ListOptions struct {
	// ResourceVersion: "" = consistent (latest, read from etcd); "0" = any
	// (served from the watch cache, Limit and Continue ignored as upstream);
	// "N" = at least N (or exactly N, see ResourceVersionMatch).
	ResourceVersion string
	// ResourceVersionMatch: "", "NotOlderThan" or "Exact". With "" and a
	// non-zero N, a list with Limit is Exact (legacy paging) and one without
	// is NotOlderThan.
	ResourceVersionMatch metav1.ResourceVersionMatch
	// Limit is the maximum number of items (0 = all). Paged lists read etcd
	// at one revision; see ListResult.Continue.
	Limit int64
	// Continue is a token from a previous ListResult; ResourceVersion and
	// ResourceVersionMatch are ignored with it (the API server rejects the
	// combination).
	Continue string
	// Predicate selects items; nil selects all. It is applied before Limit
	// counting, so a page holds up to Limit matching items.
	Predicate func(runtime.Object) bool
}

// ListResult is one page of a list.
type ListResult struct {
	Items           []runtime.Object // sorted by key; the caller's own copies
	ResourceVersion int64            // revision the list is consistent at
	// Continue, when non-empty, fetches the next page at the same revision.
	Continue string
	// RemainingItemCount is the number of keys after this page, set only for
	// an unfiltered list that has more pages.
	RemainingItemCount *int64
}

// List lists the objects whose keys start with prefix (which must be inside
// the resource's prefix; a missing trailing "/" is added).
//
// Served from the watch cache: ResourceVersion "0", and "N" NotOlderThan
// without Limit (waiting up to three seconds for the cache to reach N).
// Served from etcd at one revision: ResourceVersion "" (a consistent read
// straight from etcd keeps "read your writes" simple and exact), Exact
// lists, and paged lists. Errors: ErrExpired for a compacted revision or
// continue token, ErrTooLargeResourceVersion for a revision not reached,
// ErrInvalid for malformed options.
func (r *Resource) List(ctx context.Context, prefix string, opts ListOptions) (*ListResult, error) {
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if !strings.HasPrefix(prefix, r.prefix) {
		return nil, fmt.Errorf("list %s: %w: prefix outside resource %s", prefix, ErrInvalid, r.prefix)
	}
	if opts.Continue != "" {
		rev, start, err := decodeContinue(opts.Continue, prefix)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		return r.listEtcd(ctx, prefix, start, rev, opts)
	}
	if opts.ResourceVersion == "" {
		if opts.ResourceVersionMatch != "" {
			return nil, fmt.Errorf("list %s: %w: resourceVersionMatch requires a resourceVersion", prefix, ErrInvalid)
		}
		return r.listEtcd(ctx, prefix, prefix, 0, opts)
	}
	rv, err := parseResourceVersion(opts.ResourceVersion)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	switch opts.ResourceVersionMatch {
	case metav1.ResourceVersionMatchExact:
		if rv == 0 {
			return nil, fmt.Errorf("list %s: %w: resourceVersionMatch Exact requires a non-zero resourceVersion", prefix, ErrInvalid)
		}
		return r.listEtcd(ctx, prefix, prefix, rv, opts)
	case "", metav1.ResourceVersionMatchNotOlderThan:
	default:
		return nil, fmt.Errorf("list %s: %w: unknown resourceVersionMatch %q", prefix, ErrInvalid, opts.ResourceVersionMatch)
	}
	switch {
	case rv == 0:
		return r.listCache(ctx, prefix, 0, opts)
	case opts.Limit > 0 && opts.ResourceVersionMatch == "":
		return r.listEtcd(ctx, prefix, prefix, rv, opts) // legacy: paged means exact
	case opts.Limit > 0:
		res, err := r.listEtcd(ctx, prefix, prefix, 0, opts)
		if err != nil {
			return nil, err
		}
		if res.ResourceVersion < rv {
			return nil, fmt.Errorf("list %s: %w", prefix, tooLargeError(rv, res.ResourceVersion))
		}
		return res, nil
	default:
		return r.listCache(ctx, prefix, rv, opts)
	}
}

// listCache answers from the watch cache once it reached minRev.
func (r *Resource) listCache(ctx context.Context, prefix string, minRev int64, opts ListOptions) (*ListResult, error) {
	c, err := r.watchCache(0)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	if err := c.waitUntil(ctx, minRev, freshnessTimeout); err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	items, rev := c.list(prefix, opts.Predicate)
	return &ListResult{Items: items, ResourceVersion: rev}, nil
}

// listEtcd reads keys in [start, end of prefix) at revision rev (0 = latest),
// a page of opts.Limit matching items at a time.
func (r *Resource) listEtcd(ctx context.Context, prefix, start string, rev int64, opts ListOptions) (*ListResult, error) {
	end := clientv3.GetPrefixRangeEnd(prefix)
	batch := opts.Limit
	res := &ListResult{}
	for {
		ops := []clientv3.OpOption{clientv3.WithRange(end)}
		if rev > 0 {
			ops = append(ops, clientv3.WithRev(rev))
		}
		if batch > 0 {
			ops = append(ops, clientv3.WithLimit(batch))
		}
		resp, err := r.store.client.Get(ctx, start, ops...)
		if err != nil {
			err = wrapEtcdError(err)
			if errors.Is(err, ErrExpired) && opts.Continue != "" {
				return nil, fmt.Errorf("list %s: %w", prefix, &revisionError{ErrExpired,
					"The provided continue parameter is too old to display a consistent list result. " +
						"You can start a new list without the continue parameter."})
			}
			return nil, fmt.Errorf("list %s at revision %d: %w", prefix, rev, err)
		}
		if rev == 0 {
			// Pin later batches to the revision of the first read.
			rev = resp.Header.Revision
		}
		res.ResourceVersion = rev
		for i, kv := range resp.Kvs {
			obj, err := r.decode(kv.Value, kv.ModRevision)
			if err != nil {
				return nil, fmt.Errorf("list %s: decode %s: %w", prefix, kv.Key, err)
			}
			if opts.Predicate != nil && !opts.Predicate(obj) {
				continue
			}
			res.Items = append(res.Items, obj)
			if opts.Limit <= 0 || int64(len(res.Items)) < opts.Limit {
				continue
			}
			if i == len(resp.Kvs)-1 && !resp.More {
				return res, nil // the page is full and nothing is left
			}
			next := string(kv.Key) + "\x00"
			if res.Continue, err = encodeContinue(next, prefix, rev); err != nil {
				return nil, fmt.Errorf("list %s: %w", prefix, err)
			}
			if opts.Predicate == nil {
				remaining := resp.Count - int64(i+1)
				res.RemainingItemCount = &remaining
			}
			return res, nil
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return res, nil
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		// The predicate rejected items: read larger batches so a selective
		// list of a big resource needs few round trips.
		batch = min(batch*2, maxPageSize)
	}
}

// continueToken is upstream's continue format, so tokens look familiar to
// anyone debugging kube-apiserver: base64url(JSON) of this struct.
type continueToken struct {
	APIVersion      string `json:"v"`
	ResourceVersion int64  `json:"rv"`
	StartKey        string `json:"start"` // relative to the list prefix
}

const continueAPIVersion = "meta.k8s.io/v1"

func encodeContinue(key, prefix string, rev int64) (string, error) {
	data, err := json.Marshal(continueToken{APIVersion: continueAPIVersion, ResourceVersion: rev, StartKey: strings.TrimPrefix(key, prefix)})
	if err != nil {
		return "", fmt.Errorf("encode continue token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(data), nil
}

// decodeContinue returns the revision and absolute start key of a token,
// rejecting keys that would escape prefix.
func decodeContinue(token, prefix string) (int64, string, error) {
	data, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return 0, "", fmt.Errorf("%w: continue key is not valid: %w", ErrInvalid, err)
	}
	var c continueToken
	if err := json.Unmarshal(data, &c); err != nil {
		return 0, "", fmt.Errorf("%w: continue key is not valid: %w", ErrInvalid, err)
	}
	if c.APIVersion != continueAPIVersion {
		return 0, "", fmt.Errorf("%w: continue key is not valid: server does not recognize this encoding (%q)", ErrInvalid, c.APIVersion)
	}
	if c.ResourceVersion <= 0 || c.StartKey == "" {
		return 0, "", fmt.Errorf("%w: continue key is not valid: incorrect encoded start resourceVersion or key", ErrInvalid)
	}
	// Rooted, a key that path.Clean changes contains "..", "//" or similar:
	// a token crafted to read outside the list's prefix.
	if rooted := "/" + c.StartKey; path.Clean(rooted) != rooted {
		return 0, "", fmt.Errorf("%w: continue key is not valid: %q", ErrInvalid, c.StartKey)
	}
	return c.ResourceVersion, prefix + c.StartKey, nil
}

// parseResourceVersion parses a non-empty resourceVersion string.
func parseResourceVersion(rv string) (int64, error) {
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: invalid resource version %q", ErrInvalid, rv)
	}
	return n, nil
}
