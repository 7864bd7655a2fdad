package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/skiff-project/skiff/pkg/apiserver/apiservertest"
)

// TestRunAPIAgainstRealServer runs every phase briefly against an in-process
// API server and checks what was measured, not how fast.
func TestRunAPIAgainstRealServer(t *testing.T) {
	s := apiservertest.Start(t)
	cfg := rest.CopyConfig(s.Config)
	o := &apiOptions{
		client:      clientOptions{qps: -1, timeout: 30 * time.Second},
		duration:    200 * time.Millisecond,
		rate:        50,
		concurrency: 4,
		modes:       []string{modeFixed, modeMax},
		ops:         apiOps(),
		listSize:    5,
		poolSize:    3,
		watchers:    3,
		watchRate:   50,
	}
	if err := o.validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	o.client.apply(cfg)
	rep, err := runAPI(context.Background(), cfg, o, io.Discard)
	if err != nil {
		t.Fatalf("runAPI: %v", err)
	}

	var got []string
	for _, p := range rep.Phases {
		got = append(got, p.Op+"/"+p.Mode)
		if p.Errors != 0 || p.Requests == 0 || p.Latency.Count != p.Requests {
			t.Errorf("%s %s: %d requests, %d errors (first: %s), %d latency samples; want some, none, all",
				p.Op, p.Mode, p.Requests, p.Errors, p.FirstError, p.Latency.Count)
		}
	}
	want := []string{"create/fixed", "create/max", "get/fixed", "get/max", "update/fixed", "update/max",
		"list-1/fixed", "list-1/max", "list-n/fixed", "list-n/max"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("phases mismatch (-want +got):\n%s", diff)
	}
	if w := rep.Watch; w == nil {
		t.Error("no watch fan-out result")
	} else if w.Events == 0 || w.Expected != w.Events*3 || w.Delivered != w.Expected || w.WatchErrors != 0 || w.Delivery.Count != w.Delivered {
		t.Errorf("watch fan-out: %+v; want every event delivered to all 3 watchers", *w)
	}

	// The namespaces are gone or going.
	nss, err := s.Client.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list namespaces: %v", err)
	}
	for _, ns := range nss.Items {
		if strings.HasPrefix(ns.Name, "skiff-bench-") && ns.DeletionTimestamp == nil {
			t.Errorf("namespace %s not deleted", ns.Name)
		}
	}

	var table, js bytes.Buffer
	if err := writeReport(&table, "table", rep); err != nil {
		t.Fatalf("table: %v", err)
	}
	for _, s := range []string{"list-n", "fan-out", "P99 ms"} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, table.String())
		}
	}
	if err := writeReport(&js, "json", rep); err != nil {
		t.Fatalf("json: %v", err)
	}
	var back apiReport
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON report does not parse: %v", err)
	}
	if diff := cmp.Diff(rep, &back, cmp.AllowUnexported(apiPhase{})); diff != "" {
		t.Errorf("JSON round trip mismatch (-want +got):\n%s", diff)
	}
}

func TestAPIOptionsValidate(t *testing.T) {
	good := func() *apiOptions {
		return &apiOptions{duration: time.Second, rate: 1, concurrency: 1, modes: []string{modeFixed}, ops: apiOps(), listSize: 1, poolSize: 1, watchers: 1, watchRate: 1}
	}
	if err := good().validate(); err != nil {
		t.Fatalf("valid options rejected: %v", err)
	}
	for name, mutate := range map[string]func(*apiOptions){
		"unknown op":      func(o *apiOptions) { o.ops = []string{"delete"} },
		"unknown mode":    func(o *apiOptions) { o.modes = []string{"burst"} },
		"zero duration":   func(o *apiOptions) { o.duration = 0 },
		"zero rate":       func(o *apiOptions) { o.rate = 0 },
		"no workers":      func(o *apiOptions) { o.concurrency = 0 },
		"no watchers":     func(o *apiOptions) { o.watchers = 0 },
		"empty list":      func(o *apiOptions) { o.listSize = 0 },
		"zero watch rate": func(o *apiOptions) { o.watchRate = 0 },
	} {
		o := good()
		mutate(o)
		if err := o.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestKubeconfigPath(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name string
		flag string
		env  map[string]string
		want string
	}{
		{name: "flag wins", flag: "/f", env: map[string]string{"KUBECONFIG": "/k"}, want: "/f"},
		{name: "then KUBECONFIG", env: map[string]string{"KUBECONFIG": "/k", "SKIFF_DATA_DIR": "/d"}, want: "/k"},
		{name: "then the data dir", env: map[string]string{"SKIFF_DATA_DIR": "/d"}, want: "/d/admin.kubeconfig"},
		{name: "then the default", want: "/var/lib/skiff/admin.kubeconfig"},
	}
	for _, tt := range tests {
		o := clientOptions{kubeconfig: tt.flag}
		if got := o.kubeconfigPath(env(tt.env)); got != tt.want {
			t.Errorf("%s: kubeconfigPath() = %q, want %q", tt.name, got, tt.want)
		}
	}
}
