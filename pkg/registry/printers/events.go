package printers

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// eventPrinter prints core/v1 and events.k8s.io/v1 events alike: upstream
// converts both to one internal type before printing.
func eventPrinter() *Printer {
	doc := corev1.Event{}.SwaggerDoc()
	return &Printer{
		Columns: cols(
			column("Last Seen", "string", doc["lastTimestamp"]),
			column("Type", "string", doc["type"]),
			column("Reason", "string", doc["reason"]),
			column("Object", "string", doc["involvedObject"]),
			wide(column("Subobject", "string", corev1.ObjectReference{}.SwaggerDoc()["fieldPath"])),
			wide(column("Source", "string", doc["source"])),
			column("Message", "string", doc["message"]),
			wide(column("First Seen", "string", doc["firstTimestamp"])),
			wide(column("Count", "string", doc["count"])),
			wide(nameColumn()),
		),
		Row: eventRow,
	}
}

func eventRow(obj runtime.Object, now time.Time) ([]interface{}, error) {
	switch e := obj.(type) {
	case *corev1.Event:
		if e != nil {
			return eventCells(e, now), nil
		}
	case *eventsv1.Event:
		if e != nil {
			return eventCells(coreEvent(e), now), nil
		}
	}
	return nil, fmt.Errorf("table printer for events: cannot print %T", obj)
}

// coreEvent maps an events.k8s.io/v1 event onto the core/v1 fields the
// table reads (the same mapping as upstream's conversion).
func coreEvent(e *eventsv1.Event) *corev1.Event {
	out := &corev1.Event{
		ObjectMeta:          e.ObjectMeta,
		InvolvedObject:      e.Regarding,
		Reason:              e.Reason,
		Message:             e.Note,
		Source:              e.DeprecatedSource,
		FirstTimestamp:      e.DeprecatedFirstTimestamp,
		LastTimestamp:       e.DeprecatedLastTimestamp,
		Count:               e.DeprecatedCount,
		Type:                e.Type,
		EventTime:           e.EventTime,
		Action:              e.Action,
		Related:             e.Related,
		ReportingController: e.ReportingController,
		ReportingInstance:   e.ReportingInstance,
	}
	if e.Series != nil {
		out.Series = &corev1.EventSeries{Count: e.Series.Count, LastObservedTime: e.Series.LastObservedTime}
	}
	return out
}

// eventCells follows upstream's printEvent: First Seen falls back to
// eventTime, Last Seen to First Seen, and a series overrides both Last Seen
// and Count; singleton events of the new API count as 1.
func eventCells(e *corev1.Event, now time.Time) []interface{} {
	first := age(e.FirstTimestamp, now)
	if e.FirstTimestamp.IsZero() {
		first = microAge(e.EventTime, now)
	}
	last := age(e.LastTimestamp, now)
	if e.LastTimestamp.IsZero() {
		last = first
	}
	count := e.Count
	if e.Series != nil {
		last = microAge(e.Series.LastObservedTime, now)
		count = e.Series.Count
	} else if count == 0 {
		count = 1
	}

	object := strings.ToLower(e.InvolvedObject.Kind)
	if e.InvolvedObject.Name != "" {
		object += "/" + e.InvolvedObject.Name
	}
	return []interface{}{
		last,
		e.Type,
		e.Reason,
		object,
		e.InvolvedObject.FieldPath,
		eventSource(e),
		strings.TrimSpace(e.Message),
		first,
		strconv.Itoa(int(count)),
		e.Name,
	}
}

// eventSource is "component, host", falling back to the reporting
// controller and instance of the new API; ", host" is omitted when empty.
func eventSource(e *corev1.Event) string {
	component, host := e.Source.Component, e.Source.Host
	if component == "" {
		component = e.ReportingController
	}
	if host == "" {
		host = e.ReportingInstance
	}
	if host == "" {
		return component
	}
	return component + ", " + host
}
