package cronjob

import (
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
)

// tooManyMissed is upstream's threshold for warning that a CronJob missed
// many start times (more than 80 hourly runs over a weekend, fewer than
// "lots").
const tooManyMissed = 100

// nextScheduleDelta is added to requeue delays so the sync runs just after
// the schedule time, never a hair before it.
const nextScheduleDelta = 100 * time.Millisecond

// decision is what a CronJob needs at a given moment, derived only from its
// spec, its status and the clock.
type decision struct {
	// Start is the scheduled time of the Job to create now; nil if none.
	Start *time.Time
	// Missed is the most recent unmet schedule time when it is past the
	// starting deadline (no Job is started for it).
	Missed *time.Time
	// MissedCount is the number of unmet schedule times since the last
	// scheduled one (or creation) within the starting deadline; when it is
	// above tooManyMissed it is an estimate.
	MissedCount int
	// Forbidden is set when Start would be due but a previous run is still
	// active and concurrencyPolicy is Forbid; Start is then nil.
	Forbidden bool
	// ReplaceActive is set when the active Jobs must be deleted before
	// creating the one for Start (concurrencyPolicy Replace).
	ReplaceActive bool
	// RequeueAfter is when to look at the CronJob again: just after its
	// next schedule time.
	RequeueAfter time.Duration
}

// decide computes what cj needs at now under sched. It is the whole
// scheduling policy of the controller: the most recent unmet schedule time
// (bounded by startingDeadlineSeconds), whether it was already processed,
// whether it is too late, and what concurrencyPolicy demands. An error means
// the schedule is unusable (it never fires).
func decide(cj *batchv1.CronJob, sched schedule, now time.Time) (decision, error) {
	var d decision
	_, recent, missed, err := mostRecentScheduleTime(cj, sched, now, true)
	if err != nil {
		return d, err
	}
	d.MissedCount = missed
	d.RequeueAfter = requeueAfter(cj, sched, now)
	if recent == nil {
		return d, nil
	}
	if sds := cj.Spec.StartingDeadlineSeconds; sds != nil && recent.Add(time.Duration(*sds)*time.Second).Before(now) {
		d.Missed = recent
		return d, nil
	}
	if cj.Status.LastScheduleTime != nil && cj.Status.LastScheduleTime.Time.Equal(*recent) {
		return d, nil
	}
	name := jobName(cj, *recent)
	for _, ref := range cj.Status.Active {
		if ref.Name == name {
			return d, nil
		}
	}
	switch {
	case cj.Spec.ConcurrencyPolicy == batchv1.ForbidConcurrent && len(cj.Status.Active) > 0:
		d.Forbidden = true
		return d, nil
	case cj.Spec.ConcurrencyPolicy == batchv1.ReplaceConcurrent && len(cj.Status.Active) > 0:
		d.ReplaceActive = true
	}
	d.Start = recent
	return d, nil
}

// requeueAfter is the delay until just after the first schedule time after
// the most recent one (ignoring the starting deadline), as upstream.
func requeueAfter(cj *batchv1.CronJob, sched schedule, now time.Time) time.Duration {
	earliest, recent, _, err := mostRecentScheduleTime(cj, sched, now, false)
	from := earliest
	if err == nil && recent != nil {
		from = *recent
	}
	next := sched.next(from)
	if next.IsZero() {
		return 0
	}
	return next.Add(nextScheduleDelta).Sub(now)
}

// mostRecentScheduleTime returns the time scheduling starts from (the last
// schedule time, else the creation time, moved up to now minus the starting
// deadline when withDeadline), the most recent schedule time in
// (earliest, now] or nil, and how many schedule times fall in that interval.
//
// Unlike a plain walk from earliest, which a CronJob created years ago with
// a per-minute schedule would make cost millions of steps, it searches
// backwards from now in doubling windows, so the most recent time is exact
// (where upstream's shortcut can miss it for irregular schedules). The count
// is exact when the search reached earliest; otherwise it is upstream's
// estimate (elapsed time over the first interval), used only to warn.
func mostRecentScheduleTime(cj *batchv1.CronJob, sched schedule, now time.Time, withDeadline bool) (time.Time, *time.Time, int, error) {
	earliest := cj.CreationTimestamp.Time
	if cj.Status.LastScheduleTime != nil {
		earliest = cj.Status.LastScheduleTime.Time
	}
	if sds := cj.Spec.StartingDeadlineSeconds; withDeadline && sds != nil {
		if deadline := now.Add(-time.Duration(*sds) * time.Second); deadline.After(earliest) {
			earliest = deadline
		}
	}
	t1 := sched.next(earliest)
	if t1.IsZero() {
		return earliest, nil, 0, fmt.Errorf("%w (from %s)", errNeverFires, earliest.UTC().Format(time.RFC3339))
	}
	if t1.After(now) {
		return earliest, nil, 0, nil
	}
	t2 := sched.next(t1)
	if t2.IsZero() || t2.After(now) {
		return earliest, &t1, 1, nil
	}
	interval := t2.Sub(t1)
	if interval < time.Second {
		return earliest, nil, 0, fmt.Errorf("time difference between two schedules is less than 1 second")
	}
	for w := 2 * interval; ; w *= 2 {
		start, exact := now.Add(-w), false
		if !start.After(earliest) {
			start, exact = earliest, true
		}
		var recent time.Time
		n := 0
		for t := sched.next(start); !t.IsZero() && !t.After(now); t = sched.next(t) {
			recent, n = t, n+1
		}
		if exact {
			return earliest, &recent, n, nil
		}
		if n > 0 {
			estimate := int(now.Sub(t1)/interval) + 1
			return earliest, &recent, max(n, estimate), nil
		}
	}
}

// jobName is the deterministic name of the Job for scheduledTime: the
// CronJob's name and the time in minutes since the epoch, as upstream, so a
// schedule time can never produce two Jobs.
func jobName(cj *batchv1.CronJob, scheduledTime time.Time) string {
	return fmt.Sprintf("%s-%d", cj.Name, scheduledTime.Unix()/60)
}
