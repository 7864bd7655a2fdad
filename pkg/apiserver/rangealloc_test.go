package apiserver

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-project/skiff/pkg/storage"
)

func TestBitmapBytesMatchUpstreamBigIntEncoding(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{1, 7, 64, 65, 1000, 1 << 20} {
		b := newBitmap(size)
		want := new(big.Int)
		for i := 0; i < 50; i++ {
			off := r.IntN(size)
			b.set(off)
			want.SetBit(want, off, 1)
		}
		if got := b.bytes(); string(got) != string(want.Bytes()) {
			t.Fatalf("size %d: bytes() differs from big.Int.Bytes()", size)
		}
		back, err := bitmapFromBytes(want.Bytes(), size)
		if err != nil {
			t.Fatalf("size %d: decode: %v", size, err)
		}
		if !sameBits(back, b) {
			t.Fatalf("size %d: round trip changed the set", size)
		}
	}
	if _, err := bitmapFromBytes(big.NewInt(1<<10).Bytes(), 10); err == nil {
		t.Fatal("decoding a bit beyond the range size: want an error")
	}
	if got := newBitmap(100).bytes(); len(got) != 0 {
		t.Fatalf("empty bitmap encodes to %v, want no bytes (big.Int zero)", got)
	}
}

func TestBitmapFreeFromWrapsAndRespectsBand(t *testing.T) {
	b := newBitmap(200)
	for off := 0; off < 200; off++ {
		if off != 3 && off != 150 {
			b.set(off)
		}
	}
	if got := b.freeFrom(16, 200, 151); got != 150 {
		t.Fatalf("freeFrom(16, 200, 151) = %d, want 150 (wrapped)", got)
	}
	if got := b.freeFrom(16, 200, 16); got != 150 {
		t.Fatalf("freeFrom(16, 200, 16) = %d, want 150", got)
	}
	if got := b.freeFrom(0, 16, 5); got != 3 {
		t.Fatalf("freeFrom(0, 16, 5) = %d, want 3", got)
	}
	b.set(150)
	if got := b.freeFrom(16, 200, 100); got != -1 {
		t.Fatalf("full band: freeFrom = %d, want -1", got)
	}
}

func TestStaticBandIsUpstreamFormula(t *testing.T) {
	for _, tc := range []struct {
		cidr string
		want int
	}{
		{"10.96.0.0/12", 256}, {"10.0.0.0/24", 16}, {"10.0.0.0/28", 0}, {"10.0.0.0/20", 256}, {"10.0.0.0/22", 64}, {"fd00::/108", 256},
	} {
		_, n, _ := net.ParseCIDR(tc.cidr)
		r, err := newIPRange(n)
		if err != nil {
			t.Fatal(err)
		}
		if r.static != tc.want {
			t.Errorf("%s: static band %d, want %d", tc.cidr, r.static, tc.want)
		}
	}
	if got := staticBand(2768, 16, 128, 32); got != 86 {
		t.Errorf("node port static band = %d, want 86", got)
	}
}

func TestIPRangeOffsets(t *testing.T) {
	_, n, _ := net.ParseCIDR("10.96.0.0/12")
	r, err := newIPRange(n)
	if err != nil {
		t.Fatal(err)
	}
	if r.size != 1<<20-2 {
		t.Fatalf("size %d, want 2^20-2 (no network, no broadcast)", r.size)
	}
	for off, ip := range map[int]string{0: "10.96.0.1", 9: "10.96.0.10", r.size - 1: "10.111.255.254"} {
		if got := r.addr(off).String(); got != ip {
			t.Errorf("addr(%d) = %s, want %s", off, got, ip)
		}
		if got, ok := r.offsetOf(ip); !ok || got != off {
			t.Errorf("offsetOf(%s) = %d, %v; want %d", ip, got, ok, off)
		}
	}
	for _, ip := range []string{"10.96.0.0", "10.111.255.255", "10.112.0.1", "1.1.1.1", "fd00::1", "junk"} {
		if _, ok := r.offsetOf(ip); ok {
			t.Errorf("offsetOf(%s) is allocatable, want not", ip)
		}
	}
	_, n8, _ := net.ParseCIDR("10.0.0.0/8")
	if _, err := newIPRange(n8); err == nil {
		t.Fatal("a /8 service range: want an error (its bitmap would exceed etcd's request limit)")
	}
	_, n6, _ := net.ParseCIDR("fd00:10:96::/64")
	r6, err := newIPRange(n6)
	if err != nil {
		t.Fatal(err)
	}
	if r6.size != 65535 || r6.addr(0).String() != "fd00:10:96::1" || r6.family != corev1.IPv6Protocol {
		t.Fatalf("IPv6 range: size %d first %s family %s", r6.size, r6.addr(0), r6.family)
	}
}

// testStore starts an embedded etcd for one test.
func testStore(t testing.TB) *storage.Store {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	emb, err := storage.StartEmbedded(ctx, storage.EmbeddedConfig{DataDir: t.TempDir()})
	if err != nil {
		cancel()
		t.Fatalf("start etcd: %v", err)
	}
	store := storage.New(emb.Client(), storage.Options{})
	t.Cleanup(func() {
		store.Close()
		_ = emb.Close()
		cancel()
	})
	return store
}

// testRange returns an allocator over an initialized, empty record. Two
// calls with the same store and key are two API servers sharing etcd.
func testRange(t testing.TB, store *storage.Store, key string, size, static int) *rangeAllocator {
	t.Helper()
	s, err := newScheme()
	if err != nil {
		t.Fatal(err)
	}
	codec := storage.NewProtobufCodec(s, corev1.SchemeGroupVersion.WithKind("RangeAllocation"))
	r := &rangeAllocator{
		res: store.Resource(rangesPrefix, codec, func() runtime.Object { return &corev1.RangeAllocation{} }),
		key: rangesPrefix + key, spec: fmt.Sprintf("test-%d", size), size: size, static: static,
		randN: func(n int) int { return rand.IntN(n) },
	}
	if err := r.replace(context.Background(), "", newBitmap(size)); err != nil && !errors.Is(err, errRepairConflict) {
		t.Fatalf("create record: %v", err)
	}
	return r
}

func allocNext(ctx context.Context, r *rangeAllocator) (int, error) {
	got := -1
	err := r.change(ctx, false, func(b *bitmap) error {
		got = r.next(b)
		if got < 0 {
			return errRangeFull
		}
		b.set(got)
		return nil
	})
	return got, err
}

func allocExplicit(ctx context.Context, r *rangeAllocator, off int) error {
	return r.change(ctx, false, func(b *bitmap) error {
		if !b.set(off) {
			return errAllocated
		}
		return nil
	})
}

func storedBits(t testing.TB, r *rangeAllocator) *bitmap {
	t.Helper()
	b, _, changed, err := r.readForRepair(context.Background())
	if err != nil || b == nil || changed {
		t.Fatalf("read record: %v (nil %v, changed %v)", err, b == nil, changed)
	}
	return b
}

func TestRangeAllocateAllThenFullThenRelease(t *testing.T) {
	ctx := context.Background()
	r := testRange(t, testStore(t), "all", 40, 8)
	seen := map[int]bool{}
	for i := 0; i < 40; i++ {
		off, err := allocNext(ctx, r)
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		if seen[off] {
			t.Fatalf("offset %d handed out twice", off)
		}
		// The upper band is used up before the static band is touched.
		if i < 32 && off < 8 {
			t.Fatalf("allocation %d took %d from the static band while the upper band had room", i, off)
		}
		seen[off] = true
	}
	if _, err := allocNext(ctx, r); !errors.Is(err, errRangeFull) || err.Error() != "range is full" {
		t.Fatalf("allocation beyond the range: got %v, want %q", err, "range is full")
	}
	if err := r.release(ctx, []int{17}); err != nil {
		t.Fatal(err)
	}
	if off, err := allocNext(ctx, r); err != nil || off != 17 {
		t.Fatalf("after releasing 17: got %d, %v; want 17", off, err)
	}
	if err := allocExplicit(ctx, r, 17); !errors.Is(err, errAllocated) {
		t.Fatalf("explicit request for a taken offset: %v, want errAllocated", err)
	}
	if got := storedBits(t, r).count; got != 40 {
		t.Fatalf("record holds %d offsets, want 40", got)
	}
}

func TestRangeDryRunWritesNothing(t *testing.T) {
	ctx := context.Background()
	r := testRange(t, testStore(t), "dry", 10, 0)
	err := r.change(ctx, true, func(b *bitmap) error { b.set(3); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if storedBits(t, r).has(3) {
		t.Fatal("dry run changed the record")
	}
}

func TestRangeWithoutRecordRefuses(t *testing.T) {
	r := testRange(t, testStore(t), "x", 10, 0)
	r.key = rangesPrefix + "missing"
	if _, err := allocNext(context.Background(), r); !errors.Is(err, errRangeNotLoaded) {
		t.Fatalf("allocation without a record: %v, want errRangeNotLoaded", err)
	}
}

func TestRangeRecordOfAnotherRangeRefuses(t *testing.T) {
	store := testStore(t)
	r := testRange(t, store, "spec", 10, 0)
	other := &rangeAllocator{res: r.res, key: r.key, spec: "something-else", size: r.size, randN: r.randN}
	if _, err := allocNext(context.Background(), other); !errors.Is(err, errRangeMismatch) {
		t.Fatalf("allocation against another range's record: %v, want errRangeMismatch", err)
	}
}

// Two allocators on one store are two API servers: every change is a
// compare-and-swap, so under concurrency no offset is handed out twice and
// the record ends up with exactly the offsets handed out.
func TestRangeTwoServersConcurrentNoDuplicates(t *testing.T) {
	ctx := context.Background()
	store := testStore(t)
	const size = 120
	a := testRange(t, store, "shared", size, 16)
	b := testRange(t, store, "shared", size, 16)
	var mu sync.Mutex
	got := map[int]int{}
	var full int
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		r := a
		if w%2 == 1 {
			r = b
		}
		wg.Go(func() {
			for i := 0; i < size/8+5; i++ {
				off, err := allocNext(ctx, r)
				mu.Lock()
				switch {
				case errors.Is(err, errRangeFull):
					full++
				case err != nil:
					t.Errorf("allocate: %v", err)
				default:
					got[off]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for off, n := range got {
		if n > 1 {
			t.Fatalf("offset %d handed out %d times", off, n)
		}
	}
	if len(got) != size || full != 8*(size/8+5)-size {
		t.Fatalf("handed out %d offsets with %d 'full' answers; want all %d and the rest full", len(got), full, size)
	}
	if c := storedBits(t, a).count; c != size {
		t.Fatalf("record holds %d offsets, want %d", c, size)
	}
}

// testServer is an API server on its own etcd reachable through client-go;
// internal tests drive its allocator directly.
type testServer struct {
	api    *Server
	client kubernetes.Interface
	cancel context.CancelFunc
}

func startTestServer(t testing.TB, store *storage.Store, tune func(*serviceAllocator)) *testServer {
	return startTestServerWith(t, store, Config{}, tune)
}

// startTestServerWith is startTestServer with cfg's ranges.
func startTestServerWith(t testing.TB, store *storage.Store, cfg Config, tune func(*serviceAllocator)) *testServer {
	t.Helper()
	const token = "internal-test-token"
	cfg.Store, cfg.ExternalAddress = store, "127.0.0.1:6443"
	cfg.Authenticator = NewTokenAuthenticator(map[string]*UserInfo{
		token: {Name: "admin", Groups: []string{"system:masters"}},
	})
	api, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if tune != nil {
		tune(api.ips)
	}
	hs := httptest.NewTLSServer(api.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	if err := api.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(&rest.Config{Host: hs.URL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: 1000, Burst: 1000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		api.ips.loops.Wait()
		hs.Close()
	})
	return &testServer{api: api, client: client, cancel: cancel}
}

func clusterIPService(name string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
}

// A crash between allocating and storing the Service leaves a bit no
// Service holds: the repair frees it, but only on the third pass that sees
// it (a create in flight must not lose its address).
func TestRepairFreesLeaksAfterThreePasses(t *testing.T) {
	ctx := context.Background()
	ts := startTestServer(t, testStore(t), nil)
	a := ts.api.ips
	leaked, _ := a.ipRange.offsetOf("10.96.100.100")
	if err := allocExplicit(ctx, a.ips, leaked); err != nil {
		t.Fatal(err)
	}
	leakedPort := 31000 - a.portRange.Base
	if err := allocExplicit(ctx, a.ports, leakedPort); err != nil {
		t.Fatal(err)
	}
	for pass := 1; pass <= 3; pass++ {
		if err := a.repair(ctx); err != nil {
			t.Fatalf("repair pass %d: %v", pass, err)
		}
		wantHeld := pass < 3
		if got := storedBits(t, a.ips).has(leaked); got != wantHeld {
			t.Fatalf("after pass %d the leaked IP is held=%v, want %v", pass, got, wantHeld)
		}
		if got := storedBits(t, a.ports).has(leakedPort); got != wantHeld {
			t.Fatalf("after pass %d the leaked port is held=%v, want %v", pass, got, wantHeld)
		}
	}
	// The kubernetes Service's .1 is held by a Service: never freed.
	if !storedBits(t, a.ips).has(0) {
		t.Fatal("repair freed 10.96.0.1, which the kubernetes Service holds")
	}
}

// An address a Service holds but the record lost (an old data dir, a
// restored etcd) is marked again, so it is never handed out twice.
func TestRepairMarksWhatServicesHold(t *testing.T) {
	ctx := context.Background()
	ts := startTestServer(t, testStore(t), nil)
	a := ts.api.ips
	svc := clusterIPService("np")
	svc.Spec.Type = corev1.ServiceTypeNodePort
	created, err := ts.client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ipOff, _ := a.ipRange.offsetOf(created.Spec.ClusterIP)
	portOff := int(created.Spec.Ports[0].NodePort) - a.portRange.Base
	if err := a.ips.release(ctx, []int{ipOff}); err != nil {
		t.Fatal(err)
	}
	if err := a.ports.release(ctx, []int{portOff}); err != nil {
		t.Fatal(err)
	}
	if err := a.repair(ctx); err != nil {
		t.Fatal(err)
	}
	if !storedBits(t, a.ips).has(ipOff) || !storedBits(t, a.ports).has(portOff) {
		t.Fatal("one repair pass did not mark the Service's IP and node port again")
	}
}

// The periodic repair runs on its own and stops with the server's context.
func TestRepairLoopRunsAndStops(t *testing.T) {
	ctx := context.Background()
	ts := startTestServer(t, testStore(t), func(a *serviceAllocator) {
		a.repairInterval = 20 * time.Millisecond
		a.leakRounds = 1
	})
	a := ts.api.ips
	leaked, _ := a.ipRange.offsetOf("10.100.0.1")
	if err := allocExplicit(ctx, a.ips, leaked); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for storedBits(t, a.ips).has(leaked) {
		if time.Now().After(deadline) {
			t.Fatal("the repair loop did not free the leaked IP")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ts.cancel()
	done := make(chan struct{})
	go func() { a.loops.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the repair loop did not stop with the server's context")
	}
}

// A changed --service-node-port-range makes the old record meaningless: the
// repair rewrites it for the new range from the Services.
func TestRepairRewritesRecordOfChangedRange(t *testing.T) {
	ctx := context.Background()
	store := testStore(t)
	first := startTestServer(t, store, nil)
	if _, err := first.client.CoreV1().Services("default").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "np"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 80, NodePort: 30100}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	first.cancel()
	api, err := New(Config{Store: store, ServiceNodePortRange: utilnet.PortRange{Base: 30050, Size: 100}})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	t.Cleanup(func() { cancel(); api.ips.loops.Wait() })
	if err := api.Start(sctx); err != nil {
		t.Fatal(err)
	}
	b := storedBits(t, api.ips.ports)
	var held []int
	b.forEach(func(off int) { held = append(held, off+30050) })
	sort.Ints(held)
	if fmt.Sprint(held) != "[30100]" {
		t.Fatalf("node ports held in the new range: %v, want [30100]", held)
	}
}
