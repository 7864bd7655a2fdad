// Package printers renders built-in resources as server-side tables
// (Accept: application/json;as=Table;g=meta.k8s.io;v=v1) with the columns and
// cell formatting of upstream kube-apiserver, so that the real `kubectl get`
// reads exactly as it does against upstream.
//
// The package is pure: no I/O, no clock (the caller passes "now"), no
// package-level mutable state. Every Printer is built fresh by For or Default,
// so callers may cache or mutate what they get.
//
// Like upstream's API server, which always generates tables with
// GenerateOptions{Wide: true}, a Row always returns every cell, including the
// Priority 1 ("-o wide") ones; kubectl hides those columns itself.
//
// A cell's Go type follows its column's type: "string" and "date" columns
// hold strings, "integer" columns int64, "boolean" columns bool. Where
// upstream puts a number in a "string" column (Data, Secrets, Count,
// Up-to-date, ...) the cell is the same number as a string, which kubectl
// prints identically. The one exception is CronJob's "boolean" Suspend
// column, whose cell is upstream's string "True"/"False"/"<unset>", because a
// bool would print as "true"/"false".
package printers

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"

	corev1 "k8s.io/api/core/v1"
)

// Printer renders one resource type as table rows.
type Printer struct {
	// Columns are upstream's names, types, formats and descriptions, in
	// order; Priority 1 columns are only shown by kubectl with -o wide.
	Columns []metav1.TableColumnDefinition
	// Row returns the cells for obj (one per column, first is the name),
	// with ages computed against now. It returns an error when obj is not
	// of the Go type the printer renders (or, rarely, when the object holds
	// data the column cannot be computed from).
	Row func(obj runtime.Object, now time.Time) ([]interface{}, error)
}

// For returns the printer of a built-in resource (by group and plural
// resource), false if none. Resources that upstream prints with its default
// table (roles, clusterroles, limitranges, customresourcedefinitions) get
// Default(). Each call returns a new Printer.
func For(gr schema.GroupResource) (*Printer, bool) {
	switch gr.Group {
	case "":
		return forCore(gr.Resource)
	case "apps":
		return forApps(gr.Resource)
	case "batch":
		return forBatch(gr.Resource)
	case "autoscaling":
		if gr.Resource == "horizontalpodautoscalers" {
			return hpaPrinter(), true
		}
	case "events.k8s.io":
		if gr.Resource == "events" {
			return eventPrinter(), true
		}
	case "admissionregistration.k8s.io":
		switch gr.Resource {
		case "mutatingwebhookconfigurations":
			return mutatingWebhookPrinter(), true
		case "validatingwebhookconfigurations":
			return validatingWebhookPrinter(), true
		}
	case "certificates.k8s.io":
		if gr.Resource == "certificatesigningrequests" {
			return csrPrinter(), true
		}
	case "networking.k8s.io":
		switch gr.Resource {
		case "ingresses":
			return ingressPrinter(), true
		case "ingressclasses":
			return ingressClassPrinter(), true
		case "networkpolicies":
			return networkPolicyPrinter(), true
		}
	case "policy":
		if gr.Resource == "poddisruptionbudgets" {
			return pdbPrinter(), true
		}
	case "rbac.authorization.k8s.io":
		switch gr.Resource {
		case "roles", "clusterroles":
			return Default(), true
		case "rolebindings":
			return roleBindingPrinter(), true
		case "clusterrolebindings":
			return clusterRoleBindingPrinter(), true
		}
	case "storage.k8s.io":
		if gr.Resource == "storageclasses" {
			return storageClassPrinter(), true
		}
	case "apiextensions.k8s.io":
		if gr.Resource == "customresourcedefinitions" {
			return Default(), true
		}
	case "scheduling.k8s.io":
		if gr.Resource == "priorityclasses" {
			return priorityClassPrinter(), true
		}
	case "coordination.k8s.io":
		if gr.Resource == "leases" {
			return leasePrinter(), true
		}
	case "discovery.k8s.io":
		if gr.Resource == "endpointslices" {
			return endpointSlicePrinter(), true
		}
	}
	return nil, false
}

// Default is the fallback printer for resources without one: NAME, CREATED AT
// (upstream's default table: "Name", "Created At" with date format). Its Row
// accepts any object with object metadata, typed or unstructured; the
// creation time is RFC 3339 in UTC, as upstream renders it.
func Default() *Printer {
	return &Printer{
		Columns: []metav1.TableColumnDefinition{
			nameColumn(),
			{Name: "Created At", Type: "date", Description: objectMetaDoc("creationTimestamp")},
		},
		Row: func(obj runtime.Object, _ time.Time) ([]interface{}, error) {
			m, err := meta.Accessor(obj)
			if err != nil {
				return nil, fmt.Errorf("default table printer: %w", err)
			}
			return []interface{}{m.GetName(), m.GetCreationTimestamp().UTC().Format(time.RFC3339)}, nil
		},
	}
}

// typed adapts a cell function over one concrete pointer type to Printer.Row,
// rejecting other types and nil pointers with an error instead of panicking.
func typed[E any, T interface {
	*E
	runtime.Object
}](cells func(T, time.Time) []interface{}) func(runtime.Object, time.Time) ([]interface{}, error) {
	return typedErr(func(o T, now time.Time) ([]interface{}, error) { return cells(o, now), nil })
}

// typedErr is typed for cell functions that can fail.
func typedErr[E any, T interface {
	*E
	runtime.Object
}](cells func(T, time.Time) ([]interface{}, error)) func(runtime.Object, time.Time) ([]interface{}, error) {
	return func(obj runtime.Object, now time.Time) ([]interface{}, error) {
		o, ok := obj.(T)
		if !ok || o == nil {
			return nil, fmt.Errorf("table printer for %T: cannot print %T", T(nil), obj)
		}
		return cells(o, now)
	}
}

// objectMetaDoc returns the API documentation of an ObjectMeta field, which
// upstream uses as the description of the Name and Age columns.
func objectMetaDoc(field string) string {
	return metav1.ObjectMeta{}.SwaggerDoc()[field]
}

// nameColumn is the first column of every table.
func nameColumn() metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: objectMetaDoc("name")}
}

// ageColumn is the "Age" column: the object's age as HumanDuration.
func ageColumn() metav1.TableColumnDefinition {
	return column("Age", "string", objectMetaDoc("creationTimestamp"))
}

// column is a default-priority column definition.
func column(name, typ, description string) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: name, Type: typ, Description: description}
}

// wide marks a column as shown only with -o wide.
func wide(c metav1.TableColumnDefinition) metav1.TableColumnDefinition {
	c.Priority = 1
	return c
}

// containersColumns are the wide "Containers" and "Images" columns of
// workload controllers.
func containersColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		wide(column("Containers", "string", "Names of each container in the template.")),
		wide(column("Images", "string", "Images referenced by each container in the template.")),
	}
}

// columns concatenates column groups, so table definitions read in order.
func columns(groups ...[]metav1.TableColumnDefinition) []metav1.TableColumnDefinition {
	var out []metav1.TableColumnDefinition
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// cols is a readability shorthand for a literal column group.
func cols(c ...metav1.TableColumnDefinition) []metav1.TableColumnDefinition { return c }

// age renders the time elapsed from t to now the way upstream's
// translateTimestampSince does: "<unknown>" for a zero time, "<invalid>" for
// a time more than a second in the future.
func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// microAge is age for MicroTime fields (event times).
func microAge(t metav1.MicroTime, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// containerCells joins container names and images with commas, as the wide
// "Containers" and "Images" columns show them.
func containerCells(containers []corev1.Container) (names, images string) {
	n := make([]string, len(containers))
	im := make([]string, len(containers))
	for i, c := range containers {
		n[i], im[i] = c.Name, c.Image
	}
	return strings.Join(n, ","), strings.Join(im, ",")
}

// boolPtrString renders an optional bool as upstream's printBoolPtr does:
// "True", "False" or "<unset>".
func boolPtrString(b *bool) string {
	switch {
	case b == nil:
		return "<unset>"
	case *b:
		return "True"
	default:
		return "False"
	}
}

// listWithMore joins at most the first max items and appends upstream's
// " + N more..." suffix; an empty list renders as "<unset>".
func listWithMore(items []string, max int) string {
	if len(items) > max {
		return fmt.Sprintf("%s + %d more...", strings.Join(items[:max], ","), len(items)-max)
	}
	if len(items) == 0 {
		return "<unset>"
	}
	return strings.Join(items, ",")
}
