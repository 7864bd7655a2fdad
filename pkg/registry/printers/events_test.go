package printers

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestEventColumns(t *testing.T) {
	want := []string{"Last Seen", "Type", "Reason", "Object", "+Subobject", "+Source", "Message", "+First Seen", "+Count", "+Name"}
	for _, gr := range []schema.GroupResource{{Resource: "events"}, {Group: "events.k8s.io", Resource: "events"}} {
		p, ok := For(gr)
		if !ok {
			t.Fatalf("For(%v): no printer", gr)
		}
		if diff := cmp.Diff(want, columnNames(p)); diff != "" {
			t.Errorf("%v columns mismatch (-want +got):\n%s", gr, diff)
		}
	}
}

func TestCoreEventRow(t *testing.T) {
	micro := func(d time.Duration) metav1.MicroTime { return metav1.NewMicroTime(now.Add(-d)) }
	pulled := &corev1.Event{
		ObjectMeta:     objMeta("web-abc12.17f3a", time.Minute),
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web-abc12", FieldPath: "spec.containers{web}"},
		Reason:         "Pulled", Type: corev1.EventTypeNormal,
		Message:        "  Container image \"nginx\" already present on machine\n",
		Source:         corev1.EventSource{Component: "kubelet", Host: "node-1"},
		FirstTimestamp: ago(10 * time.Minute), LastTimestamp: ago(5 * time.Second), Count: 4,
	}
	runRows(t, schema.GroupResource{Resource: "events"}, []rowCase{
		{
			name: "legacy event with count",
			obj:  pulled,
			want: []interface{}{"5s", "Normal", "Pulled", "pod/web-abc12", "spec.containers{web}", "kubelet, node-1",
				`Container image "nginx" already present on machine`, "10m", "4", "web-abc12.17f3a"},
		},
		{
			name: "new-API singleton falls back to eventTime and reporting controller",
			obj: &corev1.Event{
				ObjectMeta:     objMeta("web.1", time.Minute),
				InvolvedObject: corev1.ObjectReference{Kind: "Deployment", Name: "web"},
				Reason:         "ScalingReplicaSet", Type: corev1.EventTypeNormal, Message: "Scaled up",
				EventTime:           micro(30 * time.Second),
				ReportingController: "deployment-controller",
			},
			want: []interface{}{"30s", "Normal", "ScalingReplicaSet", "deployment/web", "", "deployment-controller",
				"Scaled up", "30s", "1", "web.1"},
		},
		{
			name: "series overrides last seen and count",
			obj: &corev1.Event{
				ObjectMeta:     objMeta("x", time.Hour),
				InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "node-1"},
				Reason:         "Rebooted", Type: corev1.EventTypeWarning,
				EventTime:         micro(time.Hour),
				Series:            &corev1.EventSeries{Count: 7, LastObservedTime: micro(2 * time.Minute)},
				ReportingInstance: "node-1",
			},
			want: []interface{}{"2m", "Warning", "Rebooted", "node/node-1", "", ", node-1", "", "60m", "7", "x"},
		},
		{
			name: "no times at all and no object name",
			obj: &corev1.Event{
				ObjectMeta:     metav1.ObjectMeta{Name: "y"},
				InvolvedObject: corev1.ObjectReference{Kind: "ClusterRole"},
				Reason:         "Created",
			},
			want: []interface{}{"<unknown>", "", "Created", "clusterrole", "", "", "", "<unknown>", "1", "y"},
		},
		{
			name: "first timestamp only",
			obj: &corev1.Event{
				ObjectMeta:     metav1.ObjectMeta{Name: "z"},
				InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "p"},
				FirstTimestamp: ago(3 * time.Minute), Count: 1,
				Source: corev1.EventSource{Component: "default-scheduler"},
			},
			want: []interface{}{"3m", "", "", "pod/p", "", "default-scheduler", "", "3m", "1", "z"},
		},
	})
}

func TestEventsV1Row(t *testing.T) {
	runRows(t, schema.GroupResource{Group: "events.k8s.io", Resource: "events"}, []rowCase{
		{
			name: "scheduler event",
			obj: &eventsv1.Event{
				ObjectMeta:          objMeta("web-abc12.1", time.Minute),
				EventTime:           metav1.NewMicroTime(now.Add(-8 * time.Second)),
				ReportingController: "default-scheduler", ReportingInstance: "default-scheduler-node-1",
				Action: "Binding", Reason: "Scheduled", Type: corev1.EventTypeNormal,
				Regarding: corev1.ObjectReference{Kind: "Pod", Name: "web-abc12"},
				Note:      "Successfully assigned default/web-abc12 to node-1",
			},
			want: []interface{}{"8s", "Normal", "Scheduled", "pod/web-abc12", "", "default-scheduler, default-scheduler-node-1",
				"Successfully assigned default/web-abc12 to node-1", "8s", "1", "web-abc12.1"},
		},
		{
			name: "deprecated fields and series",
			obj: &eventsv1.Event{
				ObjectMeta:               objMeta("n.2", time.Hour),
				Regarding:                corev1.ObjectReference{Kind: "Node", Name: "node-1", FieldPath: "x"},
				Reason:                   "NodeNotReady",
				Type:                     corev1.EventTypeWarning,
				DeprecatedSource:         corev1.EventSource{Component: "node-controller"},
				DeprecatedFirstTimestamp: ago(time.Hour),
				DeprecatedLastTimestamp:  ago(time.Minute),
				DeprecatedCount:          3,
				Series:                   &eventsv1.EventSeries{Count: 9, LastObservedTime: metav1.NewMicroTime(now.Add(-10 * time.Second))},
			},
			want: []interface{}{"10s", "Warning", "NodeNotReady", "node/node-1", "x", "node-controller", "", "60m", "9", "n.2"},
		},
	})
}
