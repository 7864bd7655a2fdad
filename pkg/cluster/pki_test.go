package cluster

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// testNow is a fixed clock so that renewal decisions are reproducible.
var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func testOpts() pkiOptions { return pkiOptions{now: testNow, hostname: "node-a"} }

// allFiles is every file a first start writes, in creation order.
var allFiles = []string{
	caKeyFile, caCertFile,
	servingKeyFile, servingCertFile,
	adminKeyFile, adminCertFile,
	loopbackKeyFile, loopbackCertFile,
	saKeyFile, saPubFile,
}

func mustEnsure(t testing.TB, dataDir string, extra []string, opts pkiOptions) *PKI {
	t.Helper()
	p, err := ensurePKI(dataDir, extra, opts)
	if err != nil {
		t.Fatalf("ensurePKI: %v", err)
	}
	return p
}

// verifyLeaf parses certPEM and checks that it chains to p's CA for usage at now.
func verifyLeaf(t *testing.T, p *PKI, certPEM []byte, usage x509.ExtKeyUsage, now time.Time) *x509.Certificate {
	t.Helper()
	certs, err := certutil.ParseCertsPEM(certPEM)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.CA)
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		t.Fatalf("certificate %q does not verify against the CA: %v", certs[0].Subject.CommonName, err)
	}
	return certs[0]
}

func TestEnsurePKIFirstStart(t *testing.T) {
	dataDir := t.TempDir()
	start := time.Now()
	p := mustEnsure(t, dataDir, []string{"203.0.113.7", "Skiff.Example.com", " ", "localhost"}, testOpts())
	t.Logf("first start created the PKI in %v", time.Since(start))

	if diff := cmp.Diff(allFiles, p.Generated); diff != "" {
		t.Errorf("Generated (-want +got):\n%s", diff)
	}
	if want := filepath.Join(dataDir, "pki"); p.Dir != want {
		t.Errorf("Dir = %q, want %q", p.Dir, want)
	}
	dirInfo, err := os.Stat(p.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := dirInfo.Mode().Perm(); got != 0o700 {
		t.Errorf("pki dir mode = %v, want 0700", got)
	}
	for _, name := range allFiles {
		info, err := os.Stat(filepath.Join(p.Dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		want := os.FileMode(0o644)
		if strings.HasSuffix(name, ".key") {
			want = 0o600
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s mode = %v, want %v", name, got, want)
		}
	}

	// CA: self-signed, 10 years, matching the stored files.
	if !p.CA.IsCA || p.CA.CheckSignatureFrom(p.CA) != nil {
		t.Errorf("CA is not a self-signed CA certificate")
	}
	if got := p.CA.NotAfter.Sub(testNow); got != caValidity {
		t.Errorf("CA validity = %v, want %v", got, caValidity)
	}
	if onDisk, _ := os.ReadFile(filepath.Join(p.Dir, caCertFile)); !bytes.Equal(onDisk, p.CACertPEM) {
		t.Errorf("CACertPEM differs from ca.crt")
	}
	if !publicKeysEqual(p.CA.PublicKey, p.CAKey.Public()) {
		t.Errorf("CAKey does not match CA")
	}

	// Serving certificate: verifies for server auth with every SAN.
	serving := p.ServingCert.Leaf
	if serving == nil {
		t.Fatal("ServingCert.Leaf is nil")
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.CA)
	for _, host := range []string{"127.0.0.1", "::1", "localhost", "node-a", "kubernetes", "kubernetes.default",
		"kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "10.96.0.1", "203.0.113.7", "skiff.example.com"} {
		if _, err := serving.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, CurrentTime: testNow}); err != nil {
			t.Errorf("serving certificate not valid for %q: %v", host, err)
		}
	}
	if got := serving.NotAfter.Sub(testNow); got != leafValidity {
		t.Errorf("serving validity = %v, want %v", got, leafValidity)
	}
	if !slices.Equal(serving.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("serving ExtKeyUsage = %v, want server auth only", serving.ExtKeyUsage)
	}

	// Client certificates: the right identity, client auth, signed by the CA.
	for _, tc := range []struct {
		name     string
		certPEM  []byte
		keyPEM   []byte
		wantUser string
	}{
		{"admin", p.AdminCertPEM, p.AdminKeyPEM, AdminUser},
		{"loopback", p.LoopbackCertPEM, p.LoopbackKeyPEM, LoopbackUser},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := verifyLeaf(t, p, tc.certPEM, x509.ExtKeyUsageClientAuth, testNow)
			if c.Subject.CommonName != tc.wantUser {
				t.Errorf("CN = %q, want %q", c.Subject.CommonName, tc.wantUser)
			}
			if diff := cmp.Diff([]string{MastersGroup}, c.Subject.Organization); diff != "" {
				t.Errorf("O (-want +got):\n%s", diff)
			}
			if _, err := tls.X509KeyPair(tc.certPEM, tc.keyPEM); err != nil {
				t.Errorf("cert and key do not match: %v", err)
			}
		})
	}

	// Service account keys: sa.pub is the public half of sa.key.
	pubs, err := keyutil.PublicKeysFromFile(filepath.Join(p.Dir, saPubFile))
	if err != nil {
		t.Fatalf("read sa.pub: %v", err)
	}
	if len(pubs) != 1 || !publicKeysEqual(p.ServiceAccountKey.Public(), pubs[0]) {
		t.Errorf("sa.pub does not hold the public key of sa.key")
	}
}

func TestEnsurePKIReloadReusesEverything(t *testing.T) {
	dataDir := t.TempDir()
	first := mustEnsure(t, dataDir, []string{"10.0.0.5"}, testOpts())
	// A day later, same flags: nothing may change on disk or in memory.
	opts := testOpts()
	opts.now = testNow.Add(24 * time.Hour)
	second := mustEnsure(t, dataDir, []string{"10.0.0.5"}, opts)

	if len(second.Generated) != 0 {
		t.Errorf("reload generated %v, want nothing", second.Generated)
	}
	if !bytes.Equal(first.CACertPEM, second.CACertPEM) {
		t.Errorf("reload changed the CA")
	}
	if !first.ServingCert.Leaf.Equal(second.ServingCert.Leaf) {
		t.Errorf("reload changed the serving certificate")
	}
	if !bytes.Equal(first.AdminCertPEM, second.AdminCertPEM) || !bytes.Equal(first.LoopbackCertPEM, second.LoopbackCertPEM) {
		t.Errorf("reload changed a client certificate")
	}
	if !bytes.Equal(first.ServiceAccountPublicKeyPEM, second.ServiceAccountPublicKeyPEM) {
		t.Errorf("reload changed the service account key")
	}
}

// TestEnsurePKIRepairs covers restarts after the stored PKI changed: each case
// damages a freshly created PKI and lists exactly which files the next start
// must rewrite. The CA survives every case except its own loss.
func TestEnsurePKIRepairs(t *testing.T) {
	tests := []struct {
		name      string
		damage    func(t *testing.T, dir string)
		extraSANs []string
		after     time.Duration // how long after creation the restart happens
		wantGen   []string
		wantNewCA bool
	}{
		{
			name:      "new tls-san reissues only the serving cert",
			extraSANs: []string{"192.0.2.10"},
			wantGen:   []string{servingKeyFile, servingCertFile},
		},
		{
			name:    "leaves near expiry are renewed, CA and sa.key kept",
			after:   leafValidity - renewBefore + time.Hour,
			wantGen: []string{servingKeyFile, servingCertFile, adminKeyFile, adminCertFile, loopbackKeyFile, loopbackCertFile},
		},
		{
			name:    "leaves with more than the renewal margin left are kept",
			after:   leafValidity - renewBefore - time.Hour,
			wantGen: nil,
		},
		{
			name:    "missing admin cert is reissued",
			damage:  remove(adminCertFile),
			wantGen: []string{adminKeyFile, adminCertFile},
		},
		{
			name:    "corrupt loopback key is reissued",
			damage:  overwrite(loopbackKeyFile, "garbage"),
			wantGen: []string{loopbackKeyFile, loopbackCertFile},
		},
		{
			name: "serving cert from a foreign CA is reissued",
			damage: func(t *testing.T, dir string) {
				foreign := mustEnsure(t, t.TempDir(), nil, testOpts())
				certPEM, keyPEM := certAndKeyPEM(t, foreign.ServingCert)
				overwrite(servingCertFile, string(certPEM))(t, dir)
				overwrite(servingKeyFile, string(keyPEM))(t, dir)
			},
			wantGen: []string{servingKeyFile, servingCertFile},
		},
		{
			name:    "missing sa.pub is rewritten from sa.key",
			damage:  remove(saPubFile),
			wantGen: []string{saPubFile},
		},
		{
			name:      "missing ca.crt (interrupted first start) creates a new CA and all leaves",
			damage:    remove(caCertFile),
			wantGen:   []string{caKeyFile, caCertFile, servingKeyFile, servingCertFile, adminKeyFile, adminCertFile, loopbackKeyFile, loopbackCertFile},
			wantNewCA: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := t.TempDir()
			first := mustEnsure(t, dataDir, nil, testOpts())
			if tc.damage != nil {
				tc.damage(t, first.Dir)
			}
			opts := testOpts()
			opts.now = testNow.Add(tc.after)
			second := mustEnsure(t, dataDir, tc.extraSANs, opts)

			if diff := cmp.Diff(tc.wantGen, second.Generated); diff != "" {
				t.Errorf("Generated (-want +got):\n%s", diff)
			}
			if newCA := !bytes.Equal(first.CACertPEM, second.CACertPEM); newCA != tc.wantNewCA {
				t.Errorf("new CA = %v, want %v", newCA, tc.wantNewCA)
			}
			if !bytes.Equal(first.ServiceAccountPublicKeyPEM, second.ServiceAccountPublicKeyPEM) {
				t.Errorf("service account key changed")
			}
			// Whatever was repaired, the result must be a consistent PKI.
			verifyLeaf(t, second, second.AdminCertPEM, x509.ExtKeyUsageClientAuth, opts.now)
			verifyLeaf(t, second, second.LoopbackCertPEM, x509.ExtKeyUsageClientAuth, opts.now)
			certPEM, _ := certAndKeyPEM(t, second.ServingCert)
			serving := verifyLeaf(t, second, certPEM, x509.ExtKeyUsageServerAuth, opts.now)
			for _, san := range tc.extraSANs {
				if serving.VerifyHostname(san) != nil {
					t.Errorf("serving certificate lacks SAN %s", san)
				}
			}
		})
	}
}

func TestEnsurePKIErrors(t *testing.T) {
	tests := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		wantErr string
	}{
		{"missing CA key", remove(caKeyFile), "ca.key"},
		{"corrupt CA cert", overwrite(caCertFile, "not a cert"), "move the pki directory away"},
		{
			name: "CA key of another CA",
			damage: func(t *testing.T, dir string) {
				other := mustEnsure(t, t.TempDir(), nil, testOpts())
				keyPEM, err := keyutil.MarshalPrivateKeyToPEM(other.CAKey)
				if err != nil {
					t.Fatal(err)
				}
				overwrite(caKeyFile, string(keyPEM))(t, dir)
			},
			wantErr: "does not match",
		},
		{
			name:    "CA cert that is not a CA",
			damage:  func(t *testing.T, dir string) { copyFile(t, dir, adminCertFile, caCertFile) },
			wantErr: "not a CA",
		},
		{"corrupt sa.key", overwrite(saKeyFile, "junk"), "ServiceAccount tokens"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := t.TempDir()
			p := mustEnsure(t, dataDir, nil, testOpts())
			tc.damage(t, p.Dir)
			_, err := ensurePKI(dataDir, nil, testOpts())
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ensurePKI error = %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}

	if _, err := EnsurePKI("", nil); err == nil {
		t.Errorf("EnsurePKI with empty data dir succeeded, want error")
	}
}

func TestEnsurePKIPublicEntryPoint(t *testing.T) {
	p, err := EnsurePKI(t.TempDir(), []string{"example.test"})
	if err != nil {
		t.Fatalf("EnsurePKI: %v", err)
	}
	if err := p.ServingCert.Leaf.VerifyHostname("example.test"); err != nil {
		t.Errorf("serving certificate: %v", err)
	}
	if time.Until(p.CA.NotAfter) < caValidity-time.Hour {
		t.Errorf("CA expires %v, want about 10 years from now", p.CA.NotAfter)
	}
}

func TestIssueClientCert(t *testing.T) {
	p := mustEnsure(t, t.TempDir(), nil, testOpts())
	tests := []struct {
		name         string
		cn           string
		orgs         []string
		validity     time.Duration
		wantErr      string
		wantValidity time.Duration
	}{
		{name: "node", cn: "system:node:worker-1", orgs: []string{"system:nodes"}, validity: time.Hour, wantValidity: time.Hour},
		{name: "no groups", cn: "alice", validity: 24 * time.Hour, wantValidity: 24 * time.Hour},
		{name: "several groups", cn: "bob", orgs: []string{"dev", "ops"}, validity: time.Hour, wantValidity: time.Hour},
		{name: "clamped to CA expiry", cn: "carol", validity: 20 * caValidity, wantValidity: caValidity},
		{name: "empty CN", cn: "", validity: time.Hour, wantErr: "common name"},
		{name: "zero validity", cn: "dave", wantErr: "must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			certPEM, keyPEM, err := p.issueClientCert(tc.cn, tc.orgs, testNow, tc.validity)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("issueClientCert: %v", err)
			}
			c := verifyLeaf(t, p, certPEM, x509.ExtKeyUsageClientAuth, testNow)
			if c.Subject.CommonName != tc.cn {
				t.Errorf("CN = %q, want %q", c.Subject.CommonName, tc.cn)
			}
			if diff := cmp.Diff(tc.orgs, c.Subject.Organization); diff != "" {
				t.Errorf("O (-want +got):\n%s", diff)
			}
			if got := c.NotAfter.Sub(testNow); got != tc.wantValidity {
				t.Errorf("validity = %v, want %v", got, tc.wantValidity)
			}
			if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
				t.Errorf("cert and key do not match: %v", err)
			}
		})
	}

	// The exported wrapper uses the real clock.
	certPEM, _, err := p.IssueClientCert("erin", nil, time.Hour)
	if err != nil {
		t.Fatalf("IssueClientCert: %v", err)
	}
	verifyLeaf(t, p, certPEM, x509.ExtKeyUsageClientAuth, time.Now())
	if _, _, err := p.IssueClientCert("", nil, time.Hour); err == nil || !strings.HasPrefix(err.Error(), "pki: ") {
		t.Errorf("IssueClientCert error = %v, want a pki: error", err)
	}
}

func TestServingSANs(t *testing.T) {
	ips, dns := servingSANs("Node-A", []string{"::1", "10.96.0.1", "192.0.2.1", "node-a", "api.example.com", ""})
	wantIPs := []string{"127.0.0.1", "::1", "10.96.0.1", "192.0.2.1"}
	gotIPs := make([]string, len(ips))
	for i, ip := range ips {
		gotIPs[i] = ip.String()
	}
	if diff := cmp.Diff(wantIPs, gotIPs); diff != "" {
		t.Errorf("IPs (-want +got):\n%s", diff)
	}
	wantDNS := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "node-a", "api.example.com"}
	if diff := cmp.Diff(wantDNS, dns); diff != "" {
		t.Errorf("DNS names (-want +got):\n%s", diff)
	}
	if !hasSANs(&x509.Certificate{IPAddresses: append(ips, net.ParseIP("198.51.100.1")), DNSNames: append(dns, "x")}, ips, dns) {
		t.Errorf("hasSANs rejected a superset")
	}
	if hasSANs(&x509.Certificate{IPAddresses: ips[1:], DNSNames: dns}, ips, dns) {
		t.Errorf("hasSANs accepted a certificate without 127.0.0.1")
	}
}

func TestWriteFileAtomicReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	for _, content := range []string{"one", "two"} {
		if err := writeFileAtomic(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); string(got) != content {
			t.Errorf("content = %q, want %q", got, content)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file (temp files leaked)", len(entries))
	}
	if err := writeFileAtomic(filepath.Join(dir, "missing", "f"), nil, 0o600); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("write into a missing dir: error = %v, want ErrNotExist", err)
	}
}

// BenchmarkEnsurePKIFirstStart measures what a first `skiff server` start
// spends on the PKI (keys, certificates and file writes).
func BenchmarkEnsurePKIFirstStart(b *testing.B) {
	for b.Loop() {
		mustEnsure(b, b.TempDir(), nil, testOpts())
	}
}

// BenchmarkEnsurePKIRestart measures loading an existing PKI.
func BenchmarkEnsurePKIRestart(b *testing.B) {
	dataDir := b.TempDir()
	mustEnsure(b, dataDir, nil, testOpts())
	for b.Loop() {
		mustEnsure(b, dataDir, nil, testOpts())
	}
}

func remove(name string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func overwrite(name, content string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func copyFile(t *testing.T, dir, from, to string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, from))
	if err != nil {
		t.Fatal(err)
	}
	overwrite(to, string(data))(t, dir)
}

func certAndKeyPEM(t *testing.T, c tls.Certificate) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, err := certutil.EncodeCertificates(c.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err = keyutil.MarshalPrivateKeyToPEM(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

// FuzzServingSANs checks the contract between --tls-san validation and
// certificate issuance: every SAN that ServerConfig.Validate accepts ends up
// in a serving certificate that a client verifying that host name accepts.
func FuzzServingSANs(f *testing.F) {
	for _, seed := range []string{"10.0.0.1", "fd00::1", "API.Example.com", "*.example.com", "localhost", "a b", "", "::ffff:10.0.0.1", "日本", "fe80::1%eth0"} {
		f.Add(seed)
	}
	p := mustEnsure(f, f.TempDir(), nil, testOpts())
	f.Fuzz(func(t *testing.T, san string) {
		ips, dnsNames := servingSANs("node-a", []string{san})
		if validateSAN(san) != nil {
			return
		}
		certPEM, _, err := p.issue(&x509.Certificate{IPAddresses: ips, DNSNames: dnsNames}, testNow, time.Hour)
		if err != nil {
			t.Fatalf("valid SAN %q: issue: %v", san, err)
		}
		cert := verifyLeaf(t, p, certPEM, x509.ExtKeyUsageAny, testNow)
		if !hasSANs(cert, ips, dnsNames) {
			t.Fatalf("certificate lacks the SANs for %q", san)
		}
		if !strings.HasPrefix(san, "*.") && strings.TrimSpace(san) == san {
			if err := cert.VerifyHostname(san); err != nil {
				t.Fatalf("certificate does not match %q: %v", san, err)
			}
		}
	})
}
