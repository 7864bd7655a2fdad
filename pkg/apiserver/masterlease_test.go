package apiserver

import (
	"context"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestMasterLeasesDriveKubernetesEndpoints: the "kubernetes" Service's
// Endpoints and EndpointSlice list exactly the API servers whose master
// leases are alive. A second server joins them, a stopped one withdraws
// at once, and the address of a crashed one (a lease nobody renews) goes
// when its lease expires.
func TestMasterLeasesDriveKubernetesEndpoints(t *testing.T) {
	store := testStore(t)
	const token = "masterlease-test-token"
	start := func(addr string) (*Server, context.CancelFunc) {
		api, err := New(Config{Store: store, ExternalAddress: addr,
			Authenticator: NewTokenAuthenticator(map[string]*UserInfo{token: {Name: "admin", Groups: []string{"system:masters"}}})})
		if err != nil {
			t.Fatal(err)
		}
		api.leaseRenew = 100 * time.Millisecond
		ctx, cancel := context.WithCancel(context.Background())
		if err := api.Start(ctx); err != nil {
			cancel()
			t.Fatal(err)
		}
		t.Cleanup(cancel)
		return api, cancel
	}
	a, _ := start("192.0.2.10:6443")
	hs := httptest.NewTLSServer(a.Handler())
	defer hs.Close()
	client, err := kubernetes.NewForConfig(&rest.Config{Host: hs.URL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	endpoints := func() ([]string, []string) {
		var eps, slice []string
		if e, err := client.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{}); err == nil {
			for _, sub := range e.Subsets {
				for _, a := range sub.Addresses {
					eps = append(eps, a.IP)
				}
			}
		}
		if s, err := client.DiscoveryV1().EndpointSlices("default").Get(ctx, "kubernetes", metav1.GetOptions{}); err == nil {
			for _, e := range s.Endpoints {
				slice = append(slice, e.Addresses...)
			}
		}
		return eps, slice
	}
	waitFor := func(what string, want ...string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			eps, slice := endpoints()
			if slices.Equal(eps, want) && slices.Equal(slice, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: Endpoints %v, EndpointSlice %v; want %v", what, eps, slice, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("one server", "192.0.2.10")

	_, stopB := start("192.0.2.11:6443")
	waitFor("a second server joined", "192.0.2.10", "192.0.2.11")
	stopB()
	waitFor("the second server stopped", "192.0.2.10")

	// A crashed server: its lease exists but nobody renews it.
	if err := store.PutLeased(ctx, masterLeasePrefix+"192.0.2.12", []byte("192.0.2.12"), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor("a crashed server's lease, still alive", "192.0.2.10", "192.0.2.12")
	waitFor("the crashed server's lease expired", "192.0.2.10")

	svc, err := client.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil || svc.Spec.Ports[0].TargetPort.IntValue() != 6443 || svc.Spec.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Fatalf("kubernetes Service: %+v, %v", svc, err)
	}
}
