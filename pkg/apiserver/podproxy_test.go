package apiserver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-project/skiff/pkg/apiserver/apiservertest"
)

// selfSigned returns a certificate usable as a TLS server (127.0.0.1) and
// client, and a pool trusting it.
func selfSigned(t *testing.T, cn string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// fakeKubelet records the requests the API server proxies to it.
type fakeKubelet struct {
	mu   sync.Mutex
	reqs []*http.Request // guarded by mu
}

func (k *fakeKubelet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	k.reqs = append(k.reqs, r)
	k.mu.Unlock()
	if strings.HasSuffix(r.URL.Path, "/missing") {
		http.Error(w, `container "missing" in pod "p" not found`, http.StatusNotFound)
		return
	}
	_, _ = io.WriteString(w, "from kubelet "+r.URL.Path+"?"+r.URL.RawQuery+" cn="+r.TLS.PeerCertificates[0].Subject.CommonName+" auth="+r.Header.Get("Authorization"))
}

func (k *fakeKubelet) last() *http.Request {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.reqs[len(k.reqs)-1]
}

func TestPodStreamProxy(t *testing.T) {
	ctx := context.Background()
	s := apiservertest.Start(t)
	client := s.Client

	kubeletCert, kubeletPool := selfSigned(t, "node1")
	apiCert, apiPool := selfSigned(t, "kube-apiserver-kubelet-client")
	fk := &fakeKubelet{}
	kl := httptest.NewUnstartedServer(fk)
	kl.TLS = &tls.Config{Certificates: []tls.Certificate{kubeletCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: apiPool}
	kl.StartTLS()
	t.Cleanup(kl.Close)
	port := kl.Listener.Addr().(*net.TCPAddr).Port

	node, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "node1"}, {Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(port)
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := func(name, node string, containers ...string) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{NodeName: node}}
		for _, c := range containers {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: "busybox"})
		}
		if _, err := client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pod("p", "node1", "c")
	pod("two", "node1", "a", "b")
	pod("pending", "", "c")
	pod("m", "node1", "missing")

	logs := func(name string, opts *corev1.PodLogOptions) (string, error) {
		rc, err := client.CoreV1().Pods("default").GetLogs(name, opts).Stream(ctx)
		if err != nil {
			return "", err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		return string(b), err
	}

	if _, err := logs("p", &corev1.PodLogOptions{}); !apierrors.IsServiceUnavailable(err) {
		t.Errorf("logs without a kubelet client: %v, want 503", err)
	}
	s.API.SetKubeletClient(&tls.Config{Certificates: []tls.Certificate{apiCert}, RootCAs: kubeletPool})

	tail := int64(3)
	got, err := logs("p", &corev1.PodLogOptions{TailLines: &tail, Timestamps: true, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := "from kubelet /containerLogs/default/p/c?follow=true&tailLines=3&timestamps=true cn=kube-apiserver-kubelet-client auth="; got != want {
		t.Errorf("proxied log request:\n got %q\nwant %q", got, want)
	}

	for _, tc := range []struct {
		name, pod string
		opts      *corev1.PodLogOptions
		check     func(error) bool
		msg       string
	}{
		{"unbound pod", "pending", &corev1.PodLogOptions{}, apierrors.IsBadRequest, "pod pending does not have a host assigned"},
		{"no container named, two containers", "two", &corev1.PodLogOptions{}, apierrors.IsBadRequest, "a container name must be specified for pod two, choose one of: [a b]"},
		{"unknown container", "p", &corev1.PodLogOptions{Container: "x"}, apierrors.IsBadRequest, "container x is not valid for pod p"},
		{"unknown pod", "nope", &corev1.PodLogOptions{}, apierrors.IsNotFound, `pods "nope" not found`},
		{"a kubelet error becomes a Status", "m", &corev1.PodLogOptions{}, apierrors.IsNotFound, `container "missing" in pod "p" not found`},
	} {
		_, err := logs(tc.pod, tc.opts)
		if err == nil || !tc.check(err) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.msg)
		}
	}

	// A plain (not upgraded) exec request shows how parameters are
	// translated to upstream's kubelet names.
	req, err := http.NewRequest(http.MethodPost, s.HTTP.URL+"/api/v1/namespaces/default/pods/p/exec?command=echo&command=hi&stdin=true&stdout=true&tty=true&stderr=true", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiservertest.AdminToken)
	resp, err := s.HTTP.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "from kubelet /exec/default/p/c?command=echo&command=hi&input=1&output=1&tty=1 cn=kube-apiserver-kubelet-client auth="; string(b) != want {
		t.Errorf("proxied exec request:\n got %q\nwant %q", b, want)
	}
	if r := fk.last(); r.Method != http.MethodPost {
		t.Errorf("exec reached the kubelet as %s", r.Method)
	}

	// Errors from the kubelet come back as Status objects with its code.
	req, _ = http.NewRequest(http.MethodGet, s.HTTP.URL+"/api/v1/namespaces/default/pods/p/portforward", nil)
	req.Header.Set("Authorization", "Bearer "+apiservertest.AdminToken)
	resp, err = s.HTTP.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if r := fk.last(); r.URL.Path != "/portForward/default/p" {
		t.Errorf("port-forward reached the kubelet at %s", r.URL.Path)
	}
	req, _ = http.NewRequest(http.MethodDelete, s.HTTP.URL+"/api/v1/namespaces/default/pods/p/log", nil)
	req.Header.Set("Authorization", "Bearer "+apiservertest.AdminToken)
	resp, err = s.HTTP.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("DELETE pods/log: %d, want 405", resp.StatusCode)
	}
}
