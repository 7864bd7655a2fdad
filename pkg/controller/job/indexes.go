package job

import (
	"sort"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// noIndex marks a pod without a valid completion index.
const noIndex = -1

// interval is a closed range of completion indexes.
type interval struct{ first, last int }

// intervals is a sorted, non-overlapping, non-adjacent list of intervals:
// the canonical form of status.completedIndexes ("1,3-5,7").
type intervals []interval

// parseIntervals reads a completedIndexes string, ignoring indexes at or
// above completions and malformed parts (the API server validates the
// field; a leftover bad part must not wedge the Job).
func parseIntervals(s string, completions int) intervals {
	var idx []int
	if s == "" {
		return nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(hi); err != nil {
				continue
			}
		}
		for i := first; i <= last && i < completions; i++ {
			idx = append(idx, i)
		}
	}
	return intervals(nil).with(idx)
}

// with returns the union of ivs and the given indexes.
func (ivs intervals) with(idx []int) intervals {
	all := append([]int(nil), idx...)
	for _, iv := range ivs {
		for i := iv.first; i <= iv.last; i++ {
			all = append(all, i)
		}
	}
	sort.Ints(all)
	var out intervals
	for _, i := range all {
		if n := len(out); n > 0 && i <= out[n-1].last+1 {
			out[n-1].last = max(out[n-1].last, i)
			continue
		}
		out = append(out, interval{i, i})
	}
	return out
}

// has reports whether index i is in ivs.
func (ivs intervals) has(i int) bool {
	for _, iv := range ivs {
		if i >= iv.first && i <= iv.last {
			return true
		}
	}
	return false
}

// total is the number of indexes in ivs.
func (ivs intervals) total() int {
	n := 0
	for _, iv := range ivs {
		n += iv.last - iv.first + 1
	}
	return n
}

// String renders ivs as status.completedIndexes does.
func (ivs intervals) String() string {
	var b strings.Builder
	for i, iv := range ivs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(iv.first))
		if iv.last > iv.first {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(iv.last))
		}
	}
	return b.String()
}

// completionIndex returns pod's completion index from its annotation, or
// noIndex if absent or malformed.
func completionIndex(pod *corev1.Pod) int {
	v, ok := pod.Annotations[batchv1.JobCompletionIndexAnnotation]
	if !ok {
		return noIndex
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < 0 {
		return noIndex
	}
	return i
}
