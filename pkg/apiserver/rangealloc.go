package apiserver

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/storage"
)

// rangesPrefix is where upstream keeps its RangeAllocation records
// (/registry/ranges/serviceips, /registry/ranges/servicenodeports).
const rangesPrefix = "/registry/ranges/"

// Allocator errors; errRangeFull is upstream's text, which people match.
var (
	errRangeFull      = errors.New("range is full")
	errRangeMismatch  = errors.New("the stored range does not match the configured range")
	errRangeNotLoaded = errors.New("the range allocation record does not exist yet")
)

// bitmap is a set of offsets in [0, size). The zero value is an empty set of
// size 0; use newBitmap. Not safe for concurrent use.
type bitmap struct {
	words []uint64 // bit i%64 of words[i/64] is offset i
	size  int      // immutable
	count int      // number of offsets set
}

func newBitmap(size int) *bitmap {
	return &bitmap{words: make([]uint64, (size+63)/64), size: size}
}

// has reports whether off is set; offsets outside [0, size) are never set.
func (b *bitmap) has(off int) bool {
	if off < 0 || off >= b.size {
		return false
	}
	return b.words[off/64]&(1<<(off%64)) != 0
}

// set adds off and reports whether it was free before.
func (b *bitmap) set(off int) bool {
	if off < 0 || off >= b.size || b.has(off) {
		return false
	}
	b.words[off/64] |= 1 << (off % 64)
	b.count++
	return true
}

// clear removes off and reports whether it was set.
func (b *bitmap) clear(off int) bool {
	if !b.has(off) {
		return false
	}
	b.words[off/64] &^= 1 << (off % 64)
	b.count--
	return true
}

func (b *bitmap) clone() *bitmap {
	return &bitmap{words: append([]uint64(nil), b.words...), size: b.size, count: b.count}
}

// forEach calls fn for every offset set, in increasing order.
func (b *bitmap) forEach(fn func(off int)) {
	for i, w := range b.words {
		for w != 0 {
			fn(i*64 + bits.TrailingZeros64(w))
			w &= w - 1
		}
	}
}

// firstFree returns the lowest free offset in [lo, hi), or -1.
func (b *bitmap) firstFree(lo, hi int) int {
	if hi > b.size {
		hi = b.size
	}
	for lo < hi {
		i := lo / 64
		free := ^b.words[i] &^ (1<<(lo%64) - 1) // free bits at or above lo
		if free != 0 {
			off := i*64 + bits.TrailingZeros64(free)
			if off < hi {
				return off
			}
			return -1
		}
		lo = (i + 1) * 64
	}
	return -1
}

// freeFrom returns a free offset in [lo, hi): the first at or after start,
// wrapping around to lo; -1 if the band is full. lo <= start < hi.
func (b *bitmap) freeFrom(lo, hi, start int) int {
	if off := b.firstFree(start, hi); off >= 0 {
		return off
	}
	return b.firstFree(lo, start)
}

// bytes encodes b like upstream's allocation bitmap (math/big's Int.Bytes of
// the number whose bit i is offset i): big-endian, without leading zero
// bytes, so a kube-apiserver reading the same etcd understands it.
func (b *bitmap) bytes() []byte {
	top := len(b.words) - 1
	for top >= 0 && b.words[top] == 0 {
		top--
	}
	if top < 0 {
		return nil
	}
	out := make([]byte, 0, (top+1)*8)
	for i := top; i >= 0; i-- {
		w := b.words[i]
		for s := 56; s >= 0; s -= 8 {
			out = append(out, byte(w>>s))
		}
	}
	n := 0
	for n < len(out) && out[n] == 0 {
		n++
	}
	return out[n:]
}

// bitmapFromBytes decodes what bytes produced into a bitmap of size
// offsets. Bits at or above size are an error: the record belongs to a
// larger range.
func bitmapFromBytes(data []byte, size int) (*bitmap, error) {
	b := newBitmap(size)
	for j := 0; j < len(data); j++ {
		v := data[len(data)-1-j] // j-th least significant byte
		if v == 0 {
			continue
		}
		for k := 0; k < 8; k++ {
			if v&(1<<k) == 0 {
				continue
			}
			off := j*8 + k
			if off >= size {
				return nil, fmt.Errorf("allocation bitmap has offset %d set, beyond the range size %d", off, size)
			}
			b.words[off/64] |= 1 << (off % 64)
			b.count++
		}
	}
	return b, nil
}

// rangeAllocator hands out offsets [0, size) of one range (Service IPs or
// node ports). Its state lives only in etcd, in a RangeAllocation record
// like upstream's: every change reads the record and writes it back with a
// compare-and-swap on its resourceVersion, so several API servers sharing
// etcd never hand out one offset twice.
type rangeAllocator struct {
	res  *storage.Resource // the /registry/ranges/ store; immutable
	key  string            // immutable
	spec string            // RangeAllocation.range, e.g. "10.96.0.0/12"; immutable
	size int               // immutable
	// static is the size of the low band [0, static) that dynamic
	// allocation uses only once the upper band is full, leaving it to
	// explicit requests (upstream's static/dynamic split); immutable.
	static int
	// randN returns a uniform int in [0, n); immutable.
	randN func(n int) int

	// mu serializes this server's changes: they would only conflict with
	// each other in etcd and retry.
	mu sync.Mutex
}

// next picks a free offset like upstream's random scan with offset: a
// random start in the upper band, scanning forward; then the low band.
func (r *rangeAllocator) next(b *bitmap) int {
	if r.static < r.size {
		if off := b.freeFrom(r.static, r.size, r.static+r.randN(r.size-r.static)); off >= 0 {
			return off
		}
	}
	if r.static > 0 {
		return b.freeFrom(0, r.static, r.randN(r.static))
	}
	return -1
}

// decode returns the bitmap of a stored record.
func (r *rangeAllocator) decode(ra *corev1.RangeAllocation) (*bitmap, error) {
	if ra.Range != r.spec {
		return nil, fmt.Errorf("%s: %w: stored %q, configured %q", r.key, errRangeMismatch, ra.Range, r.spec)
	}
	b, err := bitmapFromBytes(ra.Data, r.size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.key, err)
	}
	return b, nil
}

// change applies fn to the stored bitmap and writes the result with a
// compare-and-swap, calling fn again on a fresh copy when another writer
// got there first; fn must therefore derive everything from its argument.
// A change that leaves the bitmap as it was writes nothing. With dryRun, fn
// runs on the current state and nothing is written. Errors from fn are
// returned unchanged.
func (r *rangeAllocator) change(ctx context.Context, dryRun bool, fn func(b *bitmap) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if dryRun {
		obj, err := r.res.Get(ctx, r.key)
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%s: %w", r.key, errRangeNotLoaded)
		}
		if err != nil {
			return err
		}
		b, err := r.decode(obj.(*corev1.RangeAllocation))
		if err != nil {
			return err
		}
		return fn(b)
	}
	_, err := r.res.Update(ctx, r.key, func(cur runtime.Object) (runtime.Object, error) {
		ra := cur.(*corev1.RangeAllocation)
		b, err := r.decode(ra)
		if err != nil {
			return nil, err
		}
		if err := fn(b); err != nil {
			return nil, err
		}
		ra.Data = b.bytes()
		return ra, nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%s: %w", r.key, errRangeNotLoaded)
	}
	return err
}

// release frees offs, each only if set; it is the inverse of an allocation
// that succeeded.
func (r *rangeAllocator) release(ctx context.Context, offs []int) error {
	if len(offs) == 0 {
		return nil
	}
	return r.change(ctx, false, func(b *bitmap) error {
		for _, off := range offs {
			b.clear(off)
		}
		return nil
	})
}

// readForRepair returns the stored bitmap and the record's
// resourceVersion; a missing record gives a nil bitmap and rv "". A record
// of another range (the flag changed) gives an empty bitmap and changed:
// its bits mean nothing for this range, the repair rebuilds it from the
// Services.
func (r *rangeAllocator) readForRepair(ctx context.Context) (b *bitmap, rv string, changed bool, err error) {
	obj, err := r.res.Get(ctx, r.key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, "", false, nil
	}
	if err != nil {
		return nil, "", false, fmt.Errorf("read %s: %w", r.key, err)
	}
	ra := obj.(*corev1.RangeAllocation)
	if ra.Range != r.spec {
		klog.InfoS("service allocation range changed; rebuilding its record from the Services", "key", r.key, "stored", ra.Range, "configured", r.spec)
		return newBitmap(r.size), ra.ResourceVersion, true, nil
	}
	b, err = r.decode(ra)
	if err != nil {
		klog.ErrorS(err, "service allocation record is corrupt; rebuilding it from the Services", "key", r.key)
		return newBitmap(r.size), ra.ResourceVersion, true, nil
	}
	return b, ra.ResourceVersion, false, nil
}

// errRepairConflict means the record changed after the repair read it.
var errRepairConflict = errors.New("range allocation changed during repair")

// replace writes b if the record is still at resourceVersion rv ("" means
// it must not exist yet); otherwise it returns errRepairConflict.
func (r *rangeAllocator) replace(ctx context.Context, rv string, b *bitmap) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rv == "" {
		_, err := r.res.Create(ctx, r.key, &corev1.RangeAllocation{Range: r.spec, Data: b.bytes()})
		if errors.Is(err, storage.ErrKeyExists) {
			return errRepairConflict
		}
		return err
	}
	_, err := r.res.Update(ctx, r.key, func(cur runtime.Object) (runtime.Object, error) {
		ra := cur.(*corev1.RangeAllocation)
		if ra.ResourceVersion != rv {
			return nil, errRepairConflict
		}
		ra.Range = r.spec
		ra.Data = b.bytes()
		return ra, nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		return errRepairConflict
	}
	return err
}
