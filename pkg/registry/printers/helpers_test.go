package printers

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// now is the fixed clock of every test.
var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// ago is a metav1.Time d before now.
func ago(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }

// agoPtr is ago as a pointer, for optional time fields.
func agoPtr(d time.Duration) *metav1.Time { t := ago(d); return &t }

// objMeta is object metadata named name, created d ago.
func objMeta(name string, d time.Duration) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "default", CreationTimestamp: ago(d)}
}

func ptr[T any](v T) *T { return &v }

// rowCase is one object and the exact cells its printer must produce.
type rowCase struct {
	name string
	obj  runtime.Object
	want []interface{}
}

// runRows prints every case with the printer of gr and compares all cells.
func runRows(t *testing.T, gr schema.GroupResource, cases []rowCase) {
	t.Helper()
	p, ok := For(gr)
	if !ok {
		t.Fatalf("For(%v): no printer", gr)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := p.Row(tc.obj, now)
			if err != nil {
				t.Fatalf("Row: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("cells mismatch (-want +got):\n%s", diff)
			}
			if len(got) != len(p.Columns) {
				t.Errorf("got %d cells for %d columns", len(got), len(p.Columns))
			}
		})
	}
}

// columnNames lists a printer's column names, wide ones marked with "+".
func columnNames(p *Printer) []string {
	names := make([]string, len(p.Columns))
	for i, c := range p.Columns {
		names[i] = c.Name
		if c.Priority == 1 {
			names[i] = "+" + c.Name
		}
	}
	return names
}

func TestAge(t *testing.T) {
	cases := []struct {
		name string
		t    metav1.Time
		want string
	}{
		{"zero time is unknown", metav1.Time{}, "<unknown>"},
		{"seconds", ago(5 * time.Second), "5s"},
		{"minutes and seconds", ago(5*time.Minute + 3*time.Second), "5m3s"},
		{"hours", ago(26 * time.Hour), "26h"},
		{"days", ago(50 * 24 * time.Hour), "50d"},
		{"one second ahead is now", ago(-time.Second), "0s"},
		{"future is invalid", ago(-time.Minute), "<invalid>"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := age(tc.t, now); got != tc.want {
				t.Errorf("age = %q, want %q", got, tc.want)
			}
		})
	}
}
