// Package framework defines the vocabulary of Skiff's scheduler: the
// tri-state Status plugins return, the NodeInfo/Snapshot view of the cluster a
// scheduling cycle runs against, the plugin interfaces at each named extension
// point, and the FitError whose text becomes the FailedScheduling event.
//
// Nothing in this package performs I/O or reads a clock, so every plugin built
// on it is a pure function of (pod, snapshot) and can be table-tested.
package framework

import (
	"errors"
	"strings"
)

// Code is the outcome class of a plugin call. The scheduler uses it to decide
// whether to try another node, attempt preemption, or back off and retry.
type Code int

const (
	// Success means the plugin accepted the pod (or node) and scheduling goes on.
	Success Code = iota
	// Error means an internal failure unrelated to the pod's fit; the pod is
	// retried with backoff and no preemption is attempted.
	Error
	// Unschedulable means the node cannot take the pod now, but removing pods
	// (preemption) or a cluster change might make it fit.
	Unschedulable
	// UnschedulableAndUnresolvable means the node can never take the pod
	// without a change to the node itself; preemption skips such nodes.
	UnschedulableAndUnresolvable
	// Skip means the plugin has nothing to say for this pod; its later
	// extension points are skipped for this cycle.
	Skip
)

var codeNames = [...]string{"Success", "Error", "Unschedulable", "UnschedulableAndUnresolvable", "Skip"}

// String returns the upstream name of the code.
func (c Code) String() string {
	if int(c) < len(codeNames) && c >= 0 {
		return codeNames[c]
	}
	return "Unknown"
}

// Status is the result of a plugin call. A nil *Status means Success, so that
// the common path allocates nothing; every method is nil-safe.
type Status struct {
	code    Code
	reasons []string
	err     error
	plugin  string
}

// NewStatus returns a status with the given code and reasons. Reasons are the
// short, constant phrases counted in the FailedScheduling message.
func NewStatus(code Code, reasons ...string) *Status {
	return &Status{code: code, reasons: reasons}
}

// AsStatus wraps an internal error into a Status with code Error.
// A nil err yields a nil (Success) status.
func AsStatus(err error) *Status {
	if err == nil {
		return nil
	}
	return &Status{code: Error, reasons: []string{err.Error()}, err: err}
}

// Code returns the status code; Success for a nil status.
func (s *Status) Code() Code {
	if s == nil {
		return Success
	}
	return s.code
}

// Reasons returns the reasons; the slice must not be modified.
func (s *Status) Reasons() []string {
	if s == nil {
		return nil
	}
	return s.reasons
}

// Message joins the reasons with ", ", as upstream does.
func (s *Status) Message() string {
	if s == nil {
		return ""
	}
	return strings.Join(s.reasons, ", ")
}

// Err returns the wrapped error for Error statuses, or an error built from the
// message for other non-success statuses, and nil on success.
func (s *Status) Err() error {
	if s.IsSuccess() {
		return nil
	}
	if s.err != nil {
		return s.err
	}
	return errors.New(s.Message())
}

// Plugin returns the name of the plugin that produced the status, if recorded.
func (s *Status) Plugin() string {
	if s == nil {
		return ""
	}
	return s.plugin
}

// WithPlugin records the producing plugin and returns s for chaining.
// It is a no-op on a nil status.
func (s *Status) WithPlugin(name string) *Status {
	if s != nil {
		s.plugin = name
	}
	return s
}

// IsSuccess reports whether the status is nil or has code Success.
func (s *Status) IsSuccess() bool { return s.Code() == Success }

// IsSkip reports whether the status has code Skip.
func (s *Status) IsSkip() bool { return s.Code() == Skip }

// IsRejected reports whether the pod does not fit (Unschedulable or
// UnschedulableAndUnresolvable), as opposed to an internal Error.
func (s *Status) IsRejected() bool {
	c := s.Code()
	return c == Unschedulable || c == UnschedulableAndUnresolvable
}
