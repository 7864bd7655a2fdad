package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/skiff-project/skiff/pkg/storage"
)

// eventTimeout bounds every wait for an expected event.
const eventTimeout = 10 * time.Second

// RunStoreSuite checks package storage's contract against the etcd behind
// client. Each subtest uses its own key prefix; the compaction tests, which
// affect the whole keyspace, run last.
func RunStoreSuite(t *testing.T, client *clientv3.Client) {
	s := &suite{client: client, codec: newPodCodec(t), id: time.Now().UnixNano()}
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"CreateGet", s.testCreateGet},
		{"StoredFormat", s.testStoredFormat},
		{"Update", s.testUpdate},
		{"UpdateRetriesLostRace", s.testUpdateRetriesLostRace},
		{"UpdateConcurrent", s.testUpdateConcurrent},
		{"Preconditions", s.testPreconditions},
		{"Delete", s.testDelete},
		{"ListPaged", s.testListPaged},
		{"ListRevisions", s.testListRevisions},
		{"ListFromCacheIsCopied", s.testListFromCacheIsCopied},
		{"JSONCodec", s.testJSONCodec},
		{"WatchInitialAndLive", s.testWatchInitialAndLive},
		{"WatchResume", s.testWatchResume},
		{"WatchAfterListStartsCache", s.testWatchAfterListStartsCache},
		{"WatchExactKey", s.testWatchExactKey},
		{"WatchTooOld", s.testWatchTooOld},
		{"WatchPredicateTransitions", s.testWatchPredicateTransitions},
		{"WatchList", s.testWatchList},
		{"Bookmarks", s.testBookmarks},
		{"SlowWatcher", s.testSlowWatcher},
		{"NoGoroutineLeak", s.testNoGoroutineLeak},
		{"CompactedRevisions", s.testCompactedRevisions},
		{"RunCompacts", s.testRunCompacts},
	} {
		t.Run(tc.name, tc.fn)
	}
}

type suite struct {
	client *clientv3.Client
	codec  storage.Codec
	// id and prefixes make key prefixes unique across suites sharing etcd.
	id       int64
	prefixes atomic.Int64
}

func newPodCodec(t *testing.T) storage.Codec {
	s := k8sruntime.NewScheme()
	if err := scheme.AddToScheme(s); err != nil {
		t.Fatalf("build scheme: %v", err)
	}
	return storage.NewProtobufCodec(s, corev1.SchemeGroupVersion.WithKind("Pod"))
}

// newResource returns a fresh Store and a pod Resource under a unique prefix.
func (s *suite) newResource(t *testing.T, opts storage.Options) (*storage.Store, *storage.Resource, string) {
	t.Helper()
	st := storage.New(s.client, opts)
	t.Cleanup(st.Close)
	name := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-"))
	prefix := fmt.Sprintf("/registry/%s-%d-%d/", name, s.id, s.prefixes.Add(1))
	return st, st.Resource(prefix, s.codec, func() k8sruntime.Object { return &corev1.Pod{} }), prefix
}

func pod(ns, name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, UID: types.UID(ns + "-" + name)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func rvOf(t *testing.T, obj k8sruntime.Object) int64 {
	t.Helper()
	acc, err := meta.Accessor(obj)
	if err != nil {
		t.Fatalf("accessor: %v", err)
	}
	rv, err := strconv.ParseInt(acc.GetResourceVersion(), 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q: %v", acc.GetResourceVersion(), err)
	}
	return rv
}

func mustCreate(t *testing.T, r *storage.Resource, key string, obj k8sruntime.Object) k8sruntime.Object {
	t.Helper()
	out, err := r.Create(ctxT(t), key, obj)
	if err != nil {
		t.Fatalf("Create %s: %v", key, err)
	}
	return out
}

func setLabel(k, v string) func(k8sruntime.Object) (k8sruntime.Object, error) {
	return func(cur k8sruntime.Object) (k8sruntime.Object, error) {
		p := cur.(*corev1.Pod)
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		p.Labels[k] = v
		return p, nil
	}
}

func mustUpdate(t *testing.T, r *storage.Resource, key string, fn func(k8sruntime.Object) (k8sruntime.Object, error)) k8sruntime.Object {
	t.Helper()
	out, err := r.Update(ctxT(t), key, fn)
	if err != nil {
		t.Fatalf("Update %s: %v", key, err)
	}
	return out
}

func (s *suite) testCreateGet(t *testing.T) {
	_, r, prefix := s.newResource(t, storage.Options{})
	ctx := ctxT(t)
	key := prefix + "default/nginx"
	in := pod("default", "nginx", map[string]string{"app": "web"})
	in.ResourceVersion = "12345" // ignored on create
	created := mustCreate(t, r, key, in)
	if in.ResourceVersion != "12345" {
		t.Errorf("Create modified its input: resourceVersion %q", in.ResourceVersion)
	}
	rev, err := r.CurrentRevision(ctx)
	if err != nil {
		t.Fatalf("CurrentRevision: %v", err)
	}
	if got := rvOf(t, created); got != rev {
		t.Errorf("created resourceVersion = %d, want the write's revision %d", got, rev)
	}
	got, err := r.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if diff := cmp.Diff(created, got); diff != "" {
		t.Errorf("Get differs from Create's result (-want +got):\n%s", diff)
	}
	if _, err := r.Create(ctx, key, in); !errors.Is(err, storage.ErrKeyExists) {
		t.Errorf("second Create error = %v, want ErrKeyExists", err)
	}
	if _, err := r.Get(ctx, prefix+"default/missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get missing error = %v, want ErrNotFound", err)
	}
}

// testStoredFormat checks the etcd value is upstream's protobuf envelope and
// carries no resourceVersion.
func (s *suite) testStoredFormat(t *testing.T) {
	_, r, prefix := s.newResource(t, storage.Options{})
	key := prefix + "default/nginx"
	mustCreate(t, r, key, pod("default", "nginx", nil))
	resp, err := s.client.Get(ctxT(t), key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("raw get: %v (%d kvs)", err, len(resp.Kvs))
	}
	value := resp.Kvs[0].Value
	if !bytes.HasPrefix(value, []byte("k8s\x00")) {
		t.Fatalf("value starts with %q, want the k8s\\x00 protobuf magic", value[:min(4, len(value))])
	}
	var unk k8sruntime.Unknown
	if err := unk.Unmarshal(value[4:]); err != nil {
		t.Fatalf("unmarshal envelope: %v", err)
	}
	if diff := cmp.Diff(k8sruntime.TypeMeta{APIVersion: "v1", Kind: "Pod"}, unk.TypeMeta); diff != "" {
		t.Errorf("envelope type (-want +got):\n%s", diff)
	}
	var p corev1.Pod
	if err := p.Unmarshal(unk.Raw); err != nil {
		t.Fatalf("unmarshal pod: %v", err)
	}
	if p.ResourceVersion != "" || p.Name != "nginx" {
		t.Errorf("stored pod name=%q resourceVersion=%q, want nginx and empty", p.Name, p.ResourceVersion)
	}
}

func (s *suite) testUpdate(t *testing.T) {
	_, r, prefix := s.newResource(t, storage.Options{})
	ctx := ctxT(t)
	key := prefix + "default/nginx"
	created := mustCreate(t, r, key, pod("default", "nginx", nil))

	updated := mustUpdate(t, r, key, setLabel("tier", "front"))
	if rvOf(t, updated) <= rvOf(t, created) {
		t.Errorf("update resourceVersion %d not after create %d", rvOf(t, updated), rvOf(t, created))
	}
	if got := updated.(*corev1.Pod).Labels["tier"]; got != "front" {
		t.Errorf("updated label = %q, want front", got)
	}

	// A no-op update keeps the resourceVersion and writes nothing.
	before, err := r.CurrentRevision(ctx)
	if err != nil {
		t.Fatalf("CurrentRevision: %v", err)
	}
	noop := mustUpdate(t, r, key, setLabel("tier", "front"))
	after, err := r.CurrentRevision(ctx)
	if err != nil {
		t.Fatalf("CurrentRevision: %v", err)
	}
	if rvOf(t, noop) != rvOf(t, updated) || after != before {
		t.Errorf("no-op update: resourceVersion %d (want %d), etcd revision %d -> %d (want unchanged)",
			rvOf(t, noop), rvOf(t, updated), before, after)
	}

	// The object handed to tryUpdate carries the current resourceVersion,
	// and tryUpdate's errors come back unchanged.
	errMine := errors.New("mine")
	var seenRV string
	_, err = r.Update(ctx, key, func(cur k8sruntime.Object) (k8sruntime.Object, error) {
		seenRV = cur.(*corev1.Pod).ResourceVersion
		return nil, errMine
	})
	if err != errMine {
		t.Errorf("Update error = %v, want tryUpdate's error unchanged", err)
	}
	if want := strconv.FormatInt(rvOf(t, updated), 10); seenRV != want {
		t.Errorf("tryUpdate saw resourceVersion %q, want %q", seenRV, want)
	}

	if _, err := r.Update(ctx, prefix+"default/missing", setLabel("a", "b")); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Update missing error = %v, want ErrNotFound", err)
	}
}

// testUpdateRetriesLostRace makes another writer win between Update's read
// and write, and checks tryUpdate runs again on the winner's object.
func (s *suite) testUpdateRetriesLostRace(t *testing.T) {
	_, r, prefix := s.newResource(t, storage.Options{})
	key := prefix + "default/nginx"
	mustCreate(t, r, key, pod("default", "nginx", nil))
	calls := 0
	out := mustUpdate(t, r, key, func(cur k8sruntime.Object) (k8sruntime.Object, error) {
		calls++
		if calls == 1 {
			mustUpdate(t, r, key, setLabel("racer", "won"))
		}
		return setLabel("mine", "too")(cur)
	})
	if calls != 2 {
		t.Errorf("tryUpdate called %d times, want 2", calls)
	}
	want := map[string]string{"racer": "won", "mine": "too"}
	if diff := cmp.Diff(want, out.(*corev1.Pod).Labels); diff != "" {
		t.Errorf("labels after retry (-want +got):\n%s", diff)
	}
}

func (s *suite) testUpdateConcurrent(t *testing.T) {
	_, r, prefix := s.newResource(t, storage.Options{})
	key := prefix + "default/counter"
	mustCreate(t, r, key, pod("default", "counter", map[string]string{"n": "0"}))
	const workers, perWorker = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perWorker {
				_, err := r.Update(context.Background(), key, func(cur k8sruntime.Object) (k8sruntime.Object, error) {
					p := cur.(*corev1.Pod)
					n, err := strconv.Atoi(p.Labels["n"])
					if err != nil {
						return nil, err
					}
					p.Labels["n"] = strconv.Itoa(n + 1)
					return p, nil
				})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Update: %v", err)
	}
	got, err := r.Get(ctxT(t), key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if n := got.(*corev1.Pod).Labels["n"]; n != strconv.Itoa(workers*perWorker) {
		t.Errorf("counter = %s, want %d: an update was lost", n, workers*perWorker)
	}
}

func (s *suite) testPreconditions(t *testing.T) {
	p := pod("default", "nginx", nil)
	p.ResourceVersion = "7"
	uid, otherUID := types.UID("default-nginx"), types.UID("other")
	rv, otherRV := "7", "8"
	for _, tc := range []struct {
		name         string
		pre          storage.Preconditions
		wantConflict bool
	}{
		{"none", storage.Preconditions{}, false},
		{"matching", storage.Preconditions{UID: &uid, ResourceVersion: &rv}, false},
		{"uid differs", storage.Preconditions{UID: &otherUID}, true},
		{"resourceVersion differs", storage.Preconditions{ResourceVersion: &otherRV}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.pre.Check("/registry/pods/default/nginx", p)
			if got := errors.Is(err, storage.ErrConflict); got != tc.wantConflict {
				t.Errorf("Check() = %v, want conflict %v", err, tc.wantConflict)
			}
		})
	}
}

func (s *suite) testDelete(t *testing.T) {
	_, r, prefix := s.newResource(t, storage.Options{})
	ctx := ctxT(t)
	key := prefix + "default/nginx"
	mustCreate(t, r, key, pod("default", "nginx", nil))

	errNo := errors.New("no")
	if _, err := r.Delete(ctx, key, func(k8sruntime.Object) error { return errNo }); err != errNo {
		t.Errorf("Delete with failing precondition = %v, want the precondition's error", err)
	}
	if _, err := r.Get(ctx, key); err != nil {
		t.Fatalf("object gone after a refused delete: %v", err)
	}

	// A change between the precondition and the delete re-runs it.
	calls := 0
	deleted, err := r.Delete(ctx, key, func(cur k8sruntime.Object) error {
		calls++
		if calls == 1 {
			mustUpdate(t, r, key, setLabel("late", "change"))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if calls != 2 {
		t.Errorf("precondition called %d times, want 2", calls)
	}
	if got := deleted.(*corev1.Pod).Labels["late"]; got != "change" {
		t.Errorf("deleted object is not the last state: labels %v", deleted.(*corev1.Pod).Labels)
	}
	rev, err := r.CurrentRevision(ctx)
	if err != nil {
		t.Fatalf("CurrentRevision: %v", err)
	}
	if got := rvOf(t, deleted); got != rev {
		t.Errorf("deleted resourceVersion = %d, want the deletion's revision %d", got, rev)
	}
	if _, err := r.Get(ctx, key); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get after delete = %v, want ErrNotFound", err)
	}
	if _, err := r.Delete(ctx, key, nil); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Delete missing = %v, want ErrNotFound", err)
	}
}

func names(objs []k8sruntime.Object) []string {
	out := []string{}
	for _, o := range objs {
		acc, _ := meta.Accessor(o)
		out = append(out, acc.GetNamespace()+"/"+acc.GetName())
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func (s *suite) testListPaged(t *testing.T) {
	_, r, prefix := s.newResource(t, storage.Options{})
	ctx := ctxT(t)
	for _, n := range []string{"e", "c", "a", "d", "b"} {
		mustCreate(t, r, prefix+"a/"+n, pod("a", n, map[string]string{"odd": strconv.FormatBool(n == "a" || n == "c" || n == "e")}))
	}
	mustCreate(t, r, prefix+"b/x", pod("b", "x", nil))
	odd := func(o k8sruntime.Object) bool { return o.(*corev1.Pod).Labels["odd"] == "true" }

	type page struct {
		Names     []string
		Remaining *int64
		More      bool
	}
	for _, tc := range []struct {
		name  string
		opts  storage.ListOptions
		pages []page
	}{
		{"all", storage.ListOptions{}, []page{{Names: []string{"a/a", "a/b", "a/c", "a/d", "a/e"}}}},
		{"limit 2", storage.ListOptions{Limit: 2}, []page{
			{Names: []string{"a/a", "a/b"}, Remaining: ptr(int64(3)), More: true},
			{Names: []string{"a/c", "a/d"}, Remaining: ptr(int64(1)), More: true},
			{Names: []string{"a/e"}},
		}},
		{"limit exact", storage.ListOptions{Limit: 5}, []page{{Names: []string{"a/a", "a/b", "a/c", "a/d", "a/e"}}}},
		{"predicate before limit", storage.ListOptions{Limit: 2, Predicate: odd}, []page{
			{Names: []string{"a/a", "a/c"}, More: true},
			{Names: []string{"a/e"}},
		}},
		{"cache", storage.ListOptions{ResourceVersion: "0", Predicate: odd}, []page{{Names: []string{"a/a", "a/c", "a/e"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			var got []page
			var rev int64
			for i := 0; i < 10; i++ {
				res, err := r.List(ctx, prefix+"a/", opts)
				if err != nil {
					t.Fatalf("List page %d: %v", i, err)
				}
				if i == 0 {
					rev = res.ResourceVersion
					// Writes after the first page must not show up in later
					// ones; the object is gone before the next case.
					key := prefix + "a/bb"
					mustCreate(t, r, key, pod("a", "bb", nil))
					defer func() {
						if _, err := r.Delete(ctx, key, nil); err != nil {
							t.Errorf("Delete: %v", err)
						}
					}()
				} else if res.ResourceVersion != rev {
					t.Errorf("page %d at revision %d, want %d", i, res.ResourceVersion, rev)
				}
				got = append(got, page{Names: names(res.Items), Remaining: res.RemainingItemCount, More: res.Continue != ""})
				if res.Continue == "" {
					break
				}
				opts.Continue = res.Continue
			}
			if diff := cmp.Diff(tc.pages, got); diff != "" {
				t.Errorf("pages (-want +got):\n%s", diff)
			}
		})
	}

	for _, token := range []string{"garbage!", "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MSwic3RhcnQiOiIuLi8uLi94In0"} {
		if _, err := r.List(ctx, prefix+"a/", storage.ListOptions{Continue: token}); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("List with continue %q = %v, want ErrInvalid", token, err)
		}
	}
}

func (s *suite) testListRevisions(t *testing.T) {
	_, r, prefix := s.newResource(t, storage.Options{})
	ctx := ctxT(t)
	key := prefix + "a/p"
	v1 := mustCreate(t, r, key, pod("a", "p", map[string]string{"v": "1"}))
	v2 := mustUpdate(t, r, key, setLabel("v", "2"))
	label := func(res *storage.ListResult) string {
		if len(res.Items) != 1 {
			return fmt.Sprintf("%d items", len(res.Items))
		}
		return res.Items[0].(*corev1.Pod).Labels["v"]
	}
	for _, tc := range []struct {
		name      string
		opts      storage.ListOptions
		wantLabel string
		wantRV    int64
	}{
		{"consistent", storage.ListOptions{}, "2", rvOf(t, v2)},
		{"exact old", storage.ListOptions{ResourceVersion: strconv.FormatInt(rvOf(t, v1), 10), ResourceVersionMatch: metav1.ResourceVersionMatchExact}, "1", rvOf(t, v1)},
		{"legacy paged is exact", storage.ListOptions{ResourceVersion: strconv.FormatInt(rvOf(t, v1), 10), Limit: 10}, "1", rvOf(t, v1)},
		{"not older than from cache", storage.ListOptions{ResourceVersion: strconv.FormatInt(rvOf(t, v2), 10), ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan}, "2", rvOf(t, v2)},
		{"any from cache", storage.ListOptions{ResourceVersion: "0"}, "2", rvOf(t, v2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := r.List(ctx, prefix, tc.opts)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if got := label(res); got != tc.wantLabel {
				t.Errorf("label v = %s, want %s", got, tc.wantLabel)
			}
			if res.ResourceVersion < tc.wantRV {
				t.Errorf("list resourceVersion %d, want >= %d", res.ResourceVersion, tc.wantRV)
			}
		})
	}
	// The cache of an idle resource catches up with writes elsewhere.
	_, other, otherPrefix := s.newResource(t, storage.Options{})
	later := mustCreate(t, other, otherPrefix+"a/x", pod("a", "x", nil))
	res, err := r.List(ctx, prefix, storage.ListOptions{ResourceVersion: strconv.FormatInt(rvOf(t, later), 10), ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan})
	if err != nil {
		t.Fatalf("List not older than another resource's write: %v", err)
	}
	if res.ResourceVersion < rvOf(t, later) {
		t.Errorf("list resourceVersion %d, want >= %d", res.ResourceVersion, rvOf(t, later))
	}
	future := strconv.FormatInt(rvOf(t, later)+1000, 10)
	if _, err := r.List(ctx, prefix, storage.ListOptions{ResourceVersion: future, ResourceVersionMatch: metav1.ResourceVersionMatchExact}); !errors.Is(err, storage.ErrTooLargeResourceVersion) {
		t.Errorf("List exact at a future revision = %v, want ErrTooLargeResourceVersion", err)
	}
	if _, err := r.List(ctx, prefix, storage.ListOptions{ResourceVersion: "x"}); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("List with resourceVersion x = %v, want ErrInvalid", err)
	}
}

func (s *suite) testListFromCacheIsCopied(t *testing.T) {
	_, r, prefix := s.newResource(t, storage.Options{})
	ctx := ctxT(t)
	mustCreate(t, r, prefix+"a/p", pod("a", "p", map[string]string{"v": "1"}))
	for i := 0; i < 2; i++ {
		res, err := r.List(ctx, prefix, storage.ListOptions{ResourceVersion: "0"})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(res.Items) != 1 {
			t.Fatalf("List returned %d items, want 1", len(res.Items))
		}
		p := res.Items[0].(*corev1.Pod)
		if p.Labels["v"] != "1" {
			t.Fatalf("list %d: label v=%q: a caller's mutation leaked into the cache", i, p.Labels["v"])
		}
		p.Labels["v"] = "mutated"
	}
}

func (s *suite) testJSONCodec(t *testing.T) {
	st := storage.New(s.client, storage.Options{})
	t.Cleanup(st.Close)
	prefix := fmt.Sprintf("/registry/example.com/widgets-%d-%d/", s.id, s.prefixes.Add(1))
	r := st.Resource(prefix, storage.NewJSONCodec(), func() k8sruntime.Object { return &unstructured.Unstructured{} })
	ctx := ctxT(t)
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"})
	obj.SetNamespace("default")
	obj.SetName("w")
	obj.SetResourceVersion("99")
	if err := unstructured.SetNestedField(obj.Object, int64(3), "spec", "size"); err != nil {
		t.Fatal(err)
	}
	created, err := r.Create(ctx, prefix+"default/w", obj)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	got, err := r.Get(ctx, prefix+"default/w")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if diff := cmp.Diff(created, got); diff != "" {
		t.Errorf("Get differs from Create (-want +got):\n%s", diff)
	}
	if size, _, _ := unstructured.NestedInt64(got.(*unstructured.Unstructured).Object, "spec", "size"); size != 3 {
		t.Errorf("spec.size = %d, want 3", size)
	}
	resp, err := s.client.Get(ctx, prefix+"default/w")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("raw get: %v", err)
	}
	if v := string(resp.Kvs[0].Value); !strings.HasPrefix(v, "{") || strings.Contains(v, "resourceVersion") {
		t.Errorf("stored value %s: want JSON without resourceVersion", v)
	}
}

// ev is the comparable summary of a watch event.
type ev struct {
	Type   watch.EventType
	Name   string
	RV     int64
	Labels map[string]string
}

func summarize(t *testing.T, e watch.Event) ev {
	t.Helper()
	if e.Type == watch.Error {
		t.Fatalf("error event: %v", e.Object)
	}
	acc, err := meta.Accessor(e.Object)
	if err != nil {
		t.Fatalf("accessor: %v", err)
	}
	out := ev{Type: e.Type, Name: acc.GetName(), RV: rvOf(t, e.Object)}
	if len(acc.GetLabels()) > 0 {
		out.Labels = acc.GetLabels()
	}
	return out
}

// nextEvents reads n events, failing if they do not arrive in time.
func nextEvents(t *testing.T, w watch.Interface, n int) []ev {
	t.Helper()
	timeout := time.NewTimer(eventTimeout)
	defer timeout.Stop()
	var out []ev
	for len(out) < n {
		select {
		case e, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("watch closed after %d of %d events: %v", len(out), n, out)
			}
			out = append(out, summarize(t, e))
		case <-timeout.C:
			t.Fatalf("got %d of %d events in %v: %v", len(out), n, eventTimeout, out)
		}
	}
	return out
}

// nextNonBookmark skips bookmarks and returns the next event.
func nextNonBookmark(t *testing.T, w watch.Interface) ev {
	t.Helper()
	for {
		e := nextEvents(t, w, 1)[0]
		if e.Type != watch.Bookmark {
			return e
		}
	}
}

func mustWatch(t *testing.T, r *storage.Resource, prefix string, opts storage.WatchOptions) watch.Interface {
	t.Helper()
	w, err := r.Watch(ctxT(t), prefix, opts)
	if err != nil {
		t.Fatalf("Watch %s: %v", prefix, err)
	}
	t.Cleanup(w.Stop)
	return w
}

// startCache starts r's watch cache before a test's writes, so that its
// history covers them (a cache lists at the revision it starts at).
func startCache(t *testing.T, r *storage.Resource, prefix string) {
	t.Helper()
	if _, err := r.List(ctxT(t), prefix, storage.ListOptions{ResourceVersion: "0"}); err != nil {
		t.Fatalf("List: %v", err)
	}
}

func (s *suite) testWatchInitialAndLive(t *testing.T) {
	_, r, prefix := s.newResource(t, storage.Options{})
	ctx := ctxT(t)
	startCache(t, r, prefix)
	a := mustCreate(t, r, prefix+"ns/a", pod("ns", "a", nil))
	b := mustCreate(t, r, prefix+"ns/b", pod("ns", "b", nil))
	mustCreate(t, r, prefix+"other/z", pod("other", "z", nil))
	for _, rv := range []string{"", "0"} {
		t.Run("rv="+rv, func(t *testing.T) {
			w := mustWatch(t, r, prefix+"ns/", storage.WatchOptions{ResourceVersion: rv})
			want := []ev{{watch.Added, "a", rvOf(t, a), nil}, {watch.Added, "b", rvOf(t, b), nil}}
			if diff := cmp.Diff(want, nextEvents(t, w, 2)); diff != "" {
				t.Errorf("initial events (-want +got):\n%s", diff)
			}
		})
	}
	w := mustWatch(t, r, prefix+"ns/", storage.WatchOptions{ResourceVersion: strconv.FormatInt(rvOf(t, b), 10)})
	c := mustCreate(t, r, prefix+"ns/c", pod("ns", "c", nil))
	mustCreate(t, r, prefix+"other/y", pod("other", "y", nil))
	c2 := mustUpdate(t, r, prefix+"ns/c", setLabel("x", "1"))
	del, err := r.Delete(ctx, prefix+"ns/a", nil)
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	want := []ev{
		{watch.Added, "c", rvOf(t, c), nil},
		{watch.Modified, "c", rvOf(t, c2), map[string]string{"x": "1"}},
		{watch.Deleted, "a", rvOf(t, del), nil},
	}
	if diff := cmp.Diff(want, nextEvents(t, w, 3)); diff != "" {
		t.Errorf("live events (-want +got):\n%s", diff)
	}
}

func (s *suite) testWatchResume(t *testing.T) {
	_, r, prefix := s.newResource(t, storage.Options{})
	w := mustWatch(t, r, prefix, storage.WatchOptions{ResourceVersion: "0"})
	a := mustCreate(t, r, prefix+"ns/a", pod("ns", "a", nil))
	if got := nextEvents(t, w, 1)[0]; got.RV != rvOf(t, a) {
		t.Fatalf("first event %v, want rv %d", got, rvOf(t, a))
	}
	w.Stop()
	// Changes while no one watches are replayed from the last seen revision.
	b := mustCreate(t, r, prefix+"ns/b", pod("ns", "b", nil))
	a2 := mustUpdate(t, r, prefix+"ns/a", setLabel("v", "2"))
	w2 := mustWatch(t, r, prefix, storage.WatchOptions{ResourceVersion: strconv.FormatInt(rvOf(t, a), 10)})
	want := []ev{{watch.Added, "b", rvOf(t, b), nil}, {watch.Modified, "a", rvOf(t, a2), map[string]string{"v": "2"}}}
	if diff := cmp.Diff(want, nextEvents(t, w2, 2)); diff != "" {
		t.Errorf("resumed events (-want +got):\n%s", diff)
	}
	// The stopped watch's channel is closed.
	deadline := time.After(eventTimeout)
	for {
		select {
		case _, ok := <-w.ResultChan():
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("stopped watch's channel not closed")
		}
	}
}

// testWatchAfterListStartsCache is the informer/kubectl -w pattern against a
// resource without a running cache: a consistent list from etcd, a write,
// then a watch from the list's revision must see the write, not a 410.
func (s *suite) testWatchAfterListStartsCache(t *testing.T) {
	_, r, prefix := s.newResource(t, storage.Options{})
	mustCreate(t, r, prefix+"ns/a", pod("ns", "a", nil))
	list, err := r.List(ctxT(t), prefix, storage.ListOptions{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	b := mustCreate(t, r, prefix+"ns/b", pod("ns", "b", nil))
	w := mustWatch(t, r, prefix, storage.WatchOptions{ResourceVersion: strconv.FormatInt(list.ResourceVersion, 10)})
	if diff := cmp.Diff([]ev{{watch.Added, "b", rvOf(t, b), nil}}, nextEvents(t, w, 1)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func (s *suite) testWatchExactKey(t *testing.T) {
	_, r, prefix := s.newResource(t, storage.Options{})
	mustCreate(t, r, prefix+"ns/a", pod("ns", "a", nil))
	ab := mustCreate(t, r, prefix+"ns/ab", pod("ns", "ab", nil))
	w := mustWatch(t, r, prefix+"ns/ab", storage.WatchOptions{})
	mustUpdate(t, r, prefix+"ns/a", setLabel("v", "2"))
	ab2 := mustUpdate(t, r, prefix+"ns/ab", setLabel("v", "2"))
	want := []ev{{watch.Added, "ab", rvOf(t, ab), nil}, {watch.Modified, "ab", rvOf(t, ab2), map[string]string{"v": "2"}}}
	if diff := cmp.Diff(want, nextEvents(t, w, 2)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func (s *suite) testWatchTooOld(t *testing.T) {
	_, r, prefix := s.newResource(t, storage.Options{WatchCacheCapacity: 3})
	first := mustCreate(t, r, prefix+"ns/a", pod("ns", "a", nil))
	mustWatch(t, r, prefix, storage.WatchOptions{ResourceVersion: "0"}) // start the cache
	var last k8sruntime.Object
	for i := range 5 {
		last = mustUpdate(t, r, prefix+"ns/a", setLabel("i", strconv.Itoa(i)))
	}
	// Wait until the cache saw the last write.
	if _, err := r.List(ctxT(t), prefix, storage.ListOptions{ResourceVersion: strconv.FormatInt(rvOf(t, last), 10)}); err != nil {
		t.Fatalf("List: %v", err)
	}
	_, err := r.Watch(ctxT(t), prefix, storage.WatchOptions{ResourceVersion: strconv.FormatInt(rvOf(t, first), 10)})
	if !errors.Is(err, storage.ErrExpired) || !strings.Contains(err.Error(), "too old resource version") {
		t.Errorf("Watch from an evicted revision = %v, want ErrExpired 'too old resource version'", err)
	}
	// The newest three events are still there.
	w := mustWatch(t, r, prefix, storage.WatchOptions{ResourceVersion: strconv.FormatInt(rvOf(t, last)-3, 10)})
	if got := nextEvents(t, w, 3); got[2].RV != rvOf(t, last) {
		t.Errorf("replayed events %v, want the last at %d", got, rvOf(t, last))
	}
}

func (s *suite) testWatchPredicateTransitions(t *testing.T) {
	_, r, prefix := s.newResource(t, storage.Options{})
	ctx := ctxT(t)
	web := func(o k8sruntime.Object) bool { return o.(*corev1.Pod).Labels["app"] == "web" }
	key := prefix + "ns/p"
	w := mustWatch(t, r, prefix, storage.WatchOptions{ResourceVersion: "0", Predicate: web})
	steps := []struct {
		name   string
		do     func() k8sruntime.Object
		want   *ev // nil: no event; RV filled from the write
		labels map[string]string
	}{
		{"create matching", func() k8sruntime.Object {
			return mustCreate(t, r, key, pod("ns", "p", map[string]string{"app": "web"}))
		},
			&ev{Type: watch.Added, Name: "p"}, map[string]string{"app": "web"}},
		{"update matching", func() k8sruntime.Object { return mustUpdate(t, r, key, setLabel("v", "2")) },
			&ev{Type: watch.Modified, Name: "p"}, map[string]string{"app": "web", "v": "2"}},
		// Leaving the selection: DELETED with the old content at the new revision.
		{"stop matching", func() k8sruntime.Object { return mustUpdate(t, r, key, setLabel("app", "db")) },
			&ev{Type: watch.Deleted, Name: "p"}, map[string]string{"app": "web", "v": "2"}},
		{"update not matching", func() k8sruntime.Object { return mustUpdate(t, r, key, setLabel("v", "3")) }, nil, nil},
		{"start matching", func() k8sruntime.Object { return mustUpdate(t, r, key, setLabel("app", "web")) },
			&ev{Type: watch.Added, Name: "p"}, map[string]string{"app": "web", "v": "3"}},
		{"delete matching", func() k8sruntime.Object {
			o, err := r.Delete(ctx, key, nil)
			if err != nil {
				t.Fatalf("Delete: %v", err)
			}
			return o
		}, &ev{Type: watch.Deleted, Name: "p"}, map[string]string{"app": "web", "v": "3"}},
	}
	var want []ev
	for _, st := range steps {
		obj := st.do()
		if st.want != nil {
			e := *st.want
			e.RV, e.Labels = rvOf(t, obj), st.labels
			want = append(want, e)
		}
	}
	if diff := cmp.Diff(want, nextEvents(t, w, len(want))); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func (s *suite) testWatchList(t *testing.T) {
	_, r, prefix := s.newResource(t, storage.Options{})
	startCache(t, r, prefix)
	a := mustCreate(t, r, prefix+"ns/a", pod("ns", "a", nil))
	b := mustCreate(t, r, prefix+"ns/b", pod("ns", "b", nil))
	for _, tc := range []struct {
		name     string
		opts     storage.WatchOptions
		wantInit []ev
		wantEnd  bool
	}{
		{"initial events rv empty", storage.WatchOptions{ResourceVersion: "", SendInitialEvents: ptr(true), AllowBookmarks: true},
			[]ev{{watch.Added, "a", rvOf(t, a), nil}, {watch.Added, "b", rvOf(t, b), nil}}, true},
		{"initial events rv 0", storage.WatchOptions{ResourceVersion: "0", SendInitialEvents: ptr(true), AllowBookmarks: true},
			[]ev{{watch.Added, "a", rvOf(t, a), nil}, {watch.Added, "b", rvOf(t, b), nil}}, true},
		{"initial events not older than a", storage.WatchOptions{ResourceVersion: strconv.FormatInt(rvOf(t, a), 10), SendInitialEvents: ptr(true), AllowBookmarks: true},
			[]ev{{watch.Added, "a", rvOf(t, a), nil}, {watch.Added, "b", rvOf(t, b), nil}}, true},
		{"classic from a", storage.WatchOptions{ResourceVersion: strconv.FormatInt(rvOf(t, a), 10)},
			[]ev{{watch.Added, "b", rvOf(t, b), nil}}, false},
		{"explicit false from a", storage.WatchOptions{ResourceVersion: strconv.FormatInt(rvOf(t, a), 10), SendInitialEvents: ptr(false)},
			[]ev{{watch.Added, "b", rvOf(t, b), nil}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := mustWatch(t, r, prefix, tc.opts)
			n := len(tc.wantInit)
			if tc.wantEnd {
				n++
			}
			got := nextEvents(t, w, n)
			if diff := cmp.Diff(tc.wantInit, got[:len(tc.wantInit)]); diff != "" {
				t.Errorf("initial events (-want +got):\n%s", diff)
			}
			if !tc.wantEnd {
				return
			}
			if end := got[n-1]; end.Type != watch.Bookmark || end.RV < rvOf(t, b) {
				t.Errorf("last event %+v, want a BOOKMARK at >= %d", end, rvOf(t, b))
			}
		})
	}
	// The end bookmark carries the annotation and an empty object.
	w := mustWatch(t, r, prefix, storage.WatchOptions{SendInitialEvents: ptr(true), AllowBookmarks: true})
	nextEvents(t, w, 2)
	select {
	case e := <-w.ResultChan():
		p, ok := e.Object.(*corev1.Pod)
		if !ok || e.Type != watch.Bookmark {
			t.Fatalf("got %s %T, want BOOKMARK *v1.Pod", e.Type, e.Object)
		}
		want := map[string]string{metav1.InitialEventsAnnotationKey: "true"}
		if diff := cmp.Diff(want, p.Annotations); diff != "" || p.Name != "" {
			t.Errorf("bookmark name %q annotations (-want +got):\n%s", p.Name, diff)
		}
	case <-time.After(eventTimeout):
		t.Fatal("no initial-events-end bookmark")
	}
}

func (s *suite) testBookmarks(t *testing.T) {
	_, r, prefix := s.newResource(t, storage.Options{BookmarkInterval: 50 * time.Millisecond})
	a := mustCreate(t, r, prefix+"ns/a", pod("ns", "a", nil))
	with := mustWatch(t, r, prefix, storage.WatchOptions{ResourceVersion: strconv.FormatInt(rvOf(t, a), 10), AllowBookmarks: true})
	without := mustWatch(t, r, prefix, storage.WatchOptions{ResourceVersion: strconv.FormatInt(rvOf(t, a), 10)})
	// Writes to another resource advance etcd; bookmarks follow via progress
	// notifications even though this resource is idle.
	_, other, otherPrefix := s.newResource(t, storage.Options{})
	later := mustCreate(t, other, otherPrefix+"ns/x", pod("ns", "x", nil))
	deadline := time.Now().Add(eventTimeout)
	var last int64
	for last < rvOf(t, later) {
		if time.Now().After(deadline) {
			t.Fatalf("no bookmark reached revision %d (last %d)", rvOf(t, later), last)
		}
		e := nextEvents(t, with, 1)[0]
		if e.Type != watch.Bookmark {
			t.Fatalf("unexpected event %+v", e)
		}
		if e.RV < last {
			t.Errorf("bookmark revision went back from %d to %d", last, e.RV)
		}
		last = e.RV
	}
	// The watcher that did not ask for bookmarks sees only the real event.
	b := mustCreate(t, r, prefix+"ns/b", pod("ns", "b", nil))
	if diff := cmp.Diff([]ev{{watch.Added, "b", rvOf(t, b), nil}}, nextEvents(t, without, 1)); diff != "" {
		t.Errorf("events without bookmarks (-want +got):\n%s", diff)
	}
	if got := nextNonBookmark(t, with); got.RV != rvOf(t, b) {
		t.Errorf("event after bookmarks %+v, want b at %d", got, rvOf(t, b))
	}
}

func (s *suite) testSlowWatcher(t *testing.T) {
	_, r, prefix := s.newResource(t, storage.Options{})
	slow := mustWatch(t, r, prefix, storage.WatchOptions{ResourceVersion: "0"})
	fast := mustWatch(t, r, prefix, storage.WatchOptions{ResourceVersion: "0"})
	const writes = 400
	fastDone := make(chan []ev, 1)
	go func() {
		var got []ev
		for e := range fast.ResultChan() {
			got = append(got, ev{Type: e.Type})
			if len(got) == writes {
				break
			}
		}
		fastDone <- got
	}()
	// Concurrent writers produce events faster than the slow watcher's
	// buffer can absorb while nobody reads it.
	var wg sync.WaitGroup
	for wkr := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := wkr; i < writes; i += 4 {
				if _, err := r.Create(context.Background(), fmt.Sprintf("%sns/p%03d", prefix, i), pod("ns", fmt.Sprintf("p%03d", i), nil)); err != nil {
					t.Errorf("Create: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case got := <-fastDone:
		if len(got) != writes {
			t.Errorf("fast watcher got %d events, want %d", len(got), writes)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("fast watcher starved")
	}
	received := 0
	deadline := time.After(eventTimeout)
	for {
		select {
		case _, ok := <-slow.ResultChan():
			if !ok {
				if received >= writes {
					t.Errorf("slow watcher received all %d events before closing; want it terminated", received)
				}
				return
			}
			received++
		case <-deadline:
			t.Fatalf("slow watcher not terminated (received %d events)", received)
		}
	}
}

// ourGoroutines returns the stacks of goroutines running package storage.
func ourGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "skiff/pkg/storage.") && !strings.Contains(g, "skiff/pkg/storage/storagetest.") {
			out = append(out, g)
		}
	}
	return out
}

func (s *suite) testNoGoroutineLeak(t *testing.T) {
	st, r, prefix := s.newResource(t, storage.Options{BookmarkInterval: 10 * time.Millisecond})
	mustCreate(t, r, prefix+"ns/a", pod("ns", "a", nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	byCtx, err := r.Watch(ctx, prefix, storage.WatchOptions{AllowBookmarks: true})
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	byStop := mustWatch(t, r, prefix, storage.WatchOptions{ResourceVersion: "0"})
	byClose := mustWatch(t, r, prefix, storage.WatchOptions{ResourceVersion: "0"})
	nextEvents(t, byCtx, 1)
	cancel()
	byStop.Stop()
	for _, w := range []watch.Interface{byCtx, byStop} {
		waitClosed(t, w)
	}
	st.Close()
	st.Close() // idempotent
	waitClosed(t, byClose)
	if _, err := r.Watch(context.Background(), prefix, storage.WatchOptions{}); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Watch after Close = %v, want ErrClosed", err)
	}
	deadline := time.Now().Add(eventTimeout)
	for {
		left := ourGoroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of package storage left after Close:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

func waitClosed(t *testing.T, w watch.Interface) {
	t.Helper()
	deadline := time.After(eventTimeout)
	for {
		select {
		case _, ok := <-w.ResultChan():
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("watch channel not closed")
		}
	}
}

func (s *suite) testCompactedRevisions(t *testing.T) {
	_, r, prefix := s.newResource(t, storage.Options{})
	ctx := ctxT(t)
	for i := range 3 {
		mustCreate(t, r, fmt.Sprintf("%sns/p%d", prefix, i), pod("ns", fmt.Sprintf("p%d", i), nil))
	}
	page, err := r.List(ctx, prefix, storage.ListOptions{Limit: 1})
	if err != nil || page.Continue == "" {
		t.Fatalf("List: %v (continue %q)", err, page.Continue)
	}
	old := page.ResourceVersion
	last := mustCreate(t, r, prefix+"ns/late", pod("ns", "late", nil))
	if _, err := s.client.Compact(ctx, rvOf(t, last)); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	for _, tc := range []struct {
		name string
		opts storage.ListOptions
	}{
		{"continue", storage.ListOptions{Continue: page.Continue}},
		{"exact", storage.ListOptions{ResourceVersion: strconv.FormatInt(old, 10), ResourceVersionMatch: metav1.ResourceVersionMatchExact}},
	} {
		if _, err := r.List(ctx, prefix, tc.opts); !errors.Is(err, storage.ErrExpired) {
			t.Errorf("%s list at compacted revision = %v, want ErrExpired", tc.name, err)
		}
	}
	// A cache started after compaction has no history before its list.
	if _, err := r.Watch(ctx, prefix, storage.WatchOptions{ResourceVersion: strconv.FormatInt(old, 10)}); !errors.Is(err, storage.ErrExpired) {
		t.Errorf("Watch from compacted revision = %v, want ErrExpired", err)
	}
}

func (s *suite) testRunCompacts(t *testing.T) {
	st, r, prefix := s.newResource(t, storage.Options{CompactionInterval: 20 * time.Millisecond})
	first := mustCreate(t, r, prefix+"ns/a", pod("ns", "a", nil))
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		st.Run(ctx)
	}()
	defer func() {
		cancel()
		<-runDone
	}()
	mustUpdate(t, r, prefix+"ns/a", setLabel("v", "2"))
	deadline := time.Now().Add(eventTimeout)
	for {
		_, err := r.List(ctxT(t), prefix, storage.ListOptions{ResourceVersion: strconv.FormatInt(rvOf(t, first), 10), ResourceVersionMatch: metav1.ResourceVersionMatchExact})
		if errors.Is(err, storage.ErrExpired) {
			return
		}
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not compact within the deadline")
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}
