package prober

import corev1 "k8s.io/api/core/v1"

// Kind names one of a container's three probes.
type Kind string

// The probe kinds, spelled as upstream spells them in event messages.
const (
	Liveness  Kind = "Liveness"
	Readiness Kind = "Readiness"
	Startup   Kind = "Startup"
)

// Result is the outcome of one probe, or a probe's current verdict.
type Result int

// Probe results. Unknown is a probe that could not be run (an error of the
// kubelet's, not of the container's); it never moves a verdict.
const (
	Unknown Result = iota
	Success
	Failure
)

// String returns "Unknown", "Success" or "Failure".
func (r Result) String() string {
	switch r {
	case Success:
		return "Success"
	case Failure:
		return "Failure"
	default:
		return "Unknown"
	}
}

// Defaults of the probe fields a client left zero; the API server applies
// the same ones.
const (
	DefaultPeriodSeconds    = 10
	DefaultTimeoutSeconds   = 1
	DefaultSuccessThreshold = 1
	DefaultFailureThreshold = 3
)

// state is the threshold state machine of one probe of one container
// instance. It does no I/O and reads no clock: the worker feeds it results.
type state struct {
	successThreshold, failureThreshold int32 // immutable; at least 1
	// verdict is the probe's current verdict: Success for liveness,
	// Failure for readiness and Unknown for startup until the thresholds
	// say otherwise, as upstream starts them.
	verdict Result
	last    Result // the latest known result
	run     int32  // how many results in a row were last
}

func newState(kind Kind, p *corev1.Probe) state {
	s := state{
		successThreshold: orDefault(p.SuccessThreshold, DefaultSuccessThreshold),
		failureThreshold: orDefault(p.FailureThreshold, DefaultFailureThreshold),
	}
	switch kind {
	case Liveness:
		s.verdict = Success
	case Readiness:
		s.verdict = Failure
	}
	return s
}

func orDefault(v, def int32) int32 {
	if v <= 0 {
		return def
	}
	return v
}

// observe feeds one probe result and reports whether the verdict changed:
// it becomes Success after successThreshold successes in a row and Failure
// after failureThreshold failures in a row. Unknown results are ignored.
func (s *state) observe(r Result) bool {
	if r == Unknown {
		return false
	}
	if r == s.last {
		s.run++
	} else {
		s.last, s.run = r, 1
	}
	threshold := s.failureThreshold
	if r == Success {
		threshold = s.successThreshold
	}
	if s.run < threshold || s.verdict == r {
		return false
	}
	s.verdict = r
	return true
}
