package printers_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-project/skiff/pkg/registry"
	"github.com/skiff-project/skiff/pkg/registry/printers"
)

// noTable lists the built-in resources that have no table: they cannot be
// listed or read.
var noTable = map[schema.GroupResource]bool{
	{Resource: "bindings"}: true,
}

// cellTypeExceptions are cells whose Go type differs from their column type
// on purpose, to print exactly as upstream: CronJob's "boolean" Suspend
// column carries upstream's "True"/"False"/"<unset>" string.
var cellTypeExceptions = map[schema.GroupResource]map[string]bool{
	{Group: "batch", Resource: "cronjobs"}: {"Suspend": true},
}

// newObject returns an empty object of the resource, unstructured for those
// served without Go types (CRDs).
func newObject(r *registry.Resource) runtime.Object {
	if r.New == nil {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(r.GroupVersionKind())
		u.SetName("example")
		return u
	}
	return r.New()
}

// TestEveryBuiltinResourceHasATable checks, for every resource Skiff serves,
// that a printer exists and that an empty object prints one cell per column,
// each of its column's type.
func TestEveryBuiltinResourceHasATable(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, r := range registry.Builtin() {
		gr := r.GroupResource()
		t.Run(r.Group+"/"+r.Version+"/"+r.Resource, func(t *testing.T) {
			p, ok := printers.For(gr)
			if noTable[gr] {
				if ok {
					t.Fatalf("For(%v) returned a printer for a resource without a table", gr)
				}
				return
			}
			if !ok {
				t.Fatalf("For(%v): no printer", gr)
			}
			cells, err := p.Row(newObject(r), now)
			if err != nil {
				t.Fatalf("Row(empty %s): %v", r.Kind, err)
			}
			if len(cells) != len(p.Columns) {
				t.Fatalf("got %d cells for %d columns", len(cells), len(p.Columns))
			}
			seen := map[string]bool{}
			for i, c := range p.Columns {
				if seen[c.Name] {
					t.Errorf("duplicate column %q", c.Name)
				}
				seen[c.Name] = true
				if c.Priority != 0 && c.Priority != 1 {
					t.Errorf("column %q: priority %d, want 0 or 1", c.Name, c.Priority)
				}
				if cellTypeExceptions[gr][c.Name] {
					continue
				}
				if got, want := goType(cells[i]), columnGoType[c.Type]; got != want {
					t.Errorf("column %q of type %q: cell %#v is %s, want %s", c.Name, c.Type, cells[i], got, want)
				}
			}
			if !seen["Name"] {
				t.Error("no Name column")
			}
		})
	}
}

// columnGoType is the Go type a cell of each column type must have.
var columnGoType = map[string]string{"string": "string", "date": "string", "integer": "int64", "boolean": "bool"}

func goType(v interface{}) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "int64"
	case bool:
		return "bool"
	}
	return "other"
}

// TestColumns pins every table's column names to upstream's; "+" marks the
// columns kubectl shows only with -o wide.
func TestColumns(t *testing.T) {
	containers := []string{"+Containers", "+Images"}
	cat := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	nameCreated := []string{"Name", "Created At"}
	cases := []struct {
		gr   schema.GroupResource
		want []string
	}{
		{schema.GroupResource{Resource: "pods"}, []string{"Name", "Ready", "Status", "Restarts", "Age", "+IP", "+Node", "+Nominated Node", "+Readiness Gates"}},
		{schema.GroupResource{Resource: "podtemplates"}, []string{"Name", "Containers", "Images", "Pod Labels"}},
		{schema.GroupResource{Resource: "replicationcontrollers"}, cat([]string{"Name", "Desired", "Current", "Ready", "Age"}, containers, []string{"+Selector"})},
		{schema.GroupResource{Resource: "services"}, []string{"Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "+Selector"}},
		{schema.GroupResource{Resource: "endpoints"}, []string{"Name", "Endpoints", "Age"}},
		{schema.GroupResource{Resource: "nodes"}, []string{"Name", "Status", "Roles", "Age", "Version", "+Internal-IP", "+External-IP", "+OS-Image", "+Kernel-Version", "+Container-Runtime"}},
		{schema.GroupResource{Resource: "namespaces"}, []string{"Name", "Status", "Age"}},
		{schema.GroupResource{Resource: "configmaps"}, []string{"Name", "Data", "Age"}},
		{schema.GroupResource{Resource: "secrets"}, []string{"Name", "Type", "Data", "Age"}},
		{schema.GroupResource{Resource: "serviceaccounts"}, []string{"Name", "Secrets", "Age"}},
		{schema.GroupResource{Resource: "persistentvolumes"}, []string{"Name", "Capacity", "Access Modes", "Reclaim Policy", "Status", "Claim", "StorageClass", "VolumeAttributesClass", "Reason", "Age", "+VolumeMode"}},
		{schema.GroupResource{Resource: "persistentvolumeclaims"}, []string{"Name", "Status", "Volume", "Capacity", "Access Modes", "StorageClass", "VolumeAttributesClass", "Age", "+VolumeMode"}},
		{schema.GroupResource{Resource: "resourcequotas"}, []string{"Name", "Request", "Limit", "Age"}},
		{schema.GroupResource{Resource: "componentstatuses"}, []string{"Name", "Status", "Message", "Error"}},
		{schema.GroupResource{Resource: "limitranges"}, nameCreated},
		{schema.GroupResource{Group: "apps", Resource: "deployments"}, cat([]string{"Name", "Ready", "Up-to-date", "Available", "Age"}, containers, []string{"+Selector"})},
		{schema.GroupResource{Group: "apps", Resource: "replicasets"}, cat([]string{"Name", "Desired", "Current", "Ready", "Age"}, containers, []string{"+Selector"})},
		{schema.GroupResource{Group: "apps", Resource: "daemonsets"}, cat([]string{"Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector", "Age"}, containers, []string{"+Selector"})},
		{schema.GroupResource{Group: "apps", Resource: "statefulsets"}, cat([]string{"Name", "Ready", "Age"}, containers)},
		{schema.GroupResource{Group: "apps", Resource: "controllerrevisions"}, []string{"Name", "Controller", "Revision", "Age"}},
		{schema.GroupResource{Group: "batch", Resource: "jobs"}, cat([]string{"Name", "Status", "Completions", "Duration", "Age"}, containers, []string{"+Selector"})},
		{schema.GroupResource{Group: "batch", Resource: "cronjobs"}, cat([]string{"Name", "Schedule", "Timezone", "Suspend", "Active", "Last Schedule", "Age"}, containers, []string{"+Selector"})},
		{schema.GroupResource{Group: "autoscaling", Resource: "horizontalpodautoscalers"}, []string{"Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"}},
		{schema.GroupResource{Group: "certificates.k8s.io", Resource: "certificatesigningrequests"}, []string{"Name", "Age", "SignerName", "Requestor", "RequestedDuration", "Condition"}},
		{schema.GroupResource{Group: "networking.k8s.io", Resource: "ingresses"}, []string{"Name", "Class", "Hosts", "Address", "Ports", "Age"}},
		{schema.GroupResource{Group: "networking.k8s.io", Resource: "ingressclasses"}, []string{"Name", "Controller", "Parameters", "Age"}},
		{schema.GroupResource{Group: "networking.k8s.io", Resource: "networkpolicies"}, []string{"Name", "Pod-Selector", "Age"}},
		{schema.GroupResource{Group: "policy", Resource: "poddisruptionbudgets"}, []string{"Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age"}},
		{schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: "rolebindings"}, []string{"Name", "Role", "Age", "+Users", "+Groups", "+ServiceAccounts"}},
		{schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"}, []string{"Name", "Role", "Age", "+Users", "+Groups", "+ServiceAccounts"}},
		{schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: "roles"}, nameCreated},
		{schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: "clusterroles"}, nameCreated},
		{schema.GroupResource{Group: "storage.k8s.io", Resource: "storageclasses"}, []string{"Name", "Provisioner", "ReclaimPolicy", "VolumeBindingMode", "AllowVolumeExpansion", "Age"}},
		{schema.GroupResource{Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"}, nameCreated},
		{schema.GroupResource{Group: "scheduling.k8s.io", Resource: "priorityclasses"}, []string{"Name", "Value", "Global-Default", "Age", "PreemptionPolicy"}},
		{schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, []string{"Name", "Holder", "Age"}},
		{schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}, []string{"Name", "AddressType", "Ports", "Endpoints", "Age"}},
		{schema.GroupResource{Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations"}, []string{"Name", "Webhooks", "Age"}},
		{schema.GroupResource{Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations"}, []string{"Name", "Webhooks", "Age"}},
	}
	for _, tc := range cases {
		t.Run(tc.gr.String(), func(t *testing.T) {
			p, ok := printers.For(tc.gr)
			if !ok {
				t.Fatalf("For(%v): no printer", tc.gr)
			}
			got := make([]string, len(p.Columns))
			for i, c := range p.Columns {
				got[i] = c.Name
				if c.Priority == 1 {
					got[i] = "+" + c.Name
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("columns mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestForUnknown(t *testing.T) {
	for _, gr := range []schema.GroupResource{
		{Resource: "bindings"},
		{Resource: "widgets"},
		{Group: "example.com", Resource: "widgets"},
		{Group: "apps", Resource: "pods"},
	} {
		if p, ok := printers.For(gr); ok || p != nil {
			t.Errorf("For(%v) = %v, %v; want nil, false", gr, p, ok)
		}
	}
}

// TestPrintersAreIndependent checks that each For call returns a fresh
// Printer, so a caller that edits one cannot affect another.
func TestPrintersAreIndependent(t *testing.T) {
	gr := schema.GroupResource{Resource: "pods"}
	a, _ := printers.For(gr)
	a.Columns[0].Name = "changed"
	b, _ := printers.For(gr)
	if b.Columns[0].Name != "Name" {
		t.Errorf("second printer's first column is %q, want %q", b.Columns[0].Name, "Name")
	}
}
