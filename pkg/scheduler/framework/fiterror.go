package framework

import (
	"fmt"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
)

// Message fragments shared with upstream so that `kubectl describe` reads the same.
const (
	// NoNodeAvailableMsg is the head of every FitError message.
	NoNodeAvailableMsg = "0/%v nodes are available"
	// separatorFormat appends one clause ending in a period.
	separatorFormat = " %v."
)

// Diagnosis explains a failed scheduling attempt.
type Diagnosis struct {
	// NodeToStatus has the Filter status of every rejected node.
	NodeToStatus NodeToStatus
	// UnschedulablePlugins names the plugins that rejected the pod; the
	// queue moves the pod back only on events those plugins care about.
	UnschedulablePlugins sets.Set[string]
	// PreFilterMsg is set when a PreFilter plugin rejected the pod outright.
	PreFilterMsg string
	// PostFilterMsg is the PostFilter (preemption) outcome, if any.
	PostFilterMsg string
}

// FitError is returned when no node can take the pod. Its Error() is the
// FailedScheduling event message and PodScheduled condition message.
type FitError struct {
	Pod         *v1.Pod
	NumAllNodes int
	Diagnosis   Diagnosis
}

// Error renders the message exactly like upstream's FitError.Error():
// "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) were unschedulable."
// Reasons are counted across nodes, formatted "<count> <reason>" and sorted as
// strings; PreFilter and PostFilter messages are appended as their own clauses.
func (f *FitError) Error() string {
	msg := fmt.Sprintf(NoNodeAvailableMsg+":", f.NumAllNodes)
	if f.Diagnosis.PreFilterMsg != "" {
		// A PreFilter rejection was copied onto every node; listing the
		// node statuses too would repeat it.
		msg += fmt.Sprintf(separatorFormat, f.Diagnosis.PreFilterMsg)
	} else {
		counts := map[string]int{}
		for _, st := range f.Diagnosis.NodeToStatus {
			for _, r := range st.Reasons() {
				counts[r]++
			}
		}
		hist := make([]string, 0, len(counts))
		for r, n := range counts {
			hist = append(hist, fmt.Sprintf("%v %v", n, r))
		}
		sort.Strings(hist)
		if len(hist) > 0 {
			msg += fmt.Sprintf(separatorFormat, strings.Join(hist, ", "))
		}
	}
	if f.Diagnosis.PostFilterMsg != "" {
		msg += fmt.Sprintf(separatorFormat, f.Diagnosis.PostFilterMsg)
	}
	return msg
}
