package cluster

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// Validity periods. Leaf certificates are short-lived compared to the CA and
// are reissued on start when they come close to expiry, so a long-running
// cluster only needs a restart (not an operator) to renew them.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	// renewBefore is how much validity a leaf must have left to be reused.
	renewBefore = 30 * 24 * time.Hour
	// backdate makes certificates valid slightly in the past so a client whose
	// clock is a little behind the server's does not reject a fresh cert.
	backdate = 5 * time.Minute
)

// File names under <dataDir>/pki. They follow kubeadm's naming where one exists
// so that operators recognise them.
const (
	caCertFile       = "ca.crt"
	caKeyFile        = "ca.key"
	servingCertFile  = "apiserver.crt"
	servingKeyFile   = "apiserver.key"
	adminCertFile    = "admin.crt"
	adminKeyFile     = "admin.key"
	loopbackCertFile = "loopback.crt"
	loopbackKeyFile  = "loopback.key"
	saKeyFile        = "sa.key"
	saPubFile        = "sa.pub"
)

// Identities of the built-in client certificates. Both are in
// system:masters, the group upstream RBAC binds to cluster-admin.
const (
	// AdminUser is the CN of the admin client certificate in admin.kubeconfig.
	AdminUser = "kubernetes-admin"
	// LoopbackUser is the CN of the client certificate that in-process
	// components (controllers, scheduler, agent) use to talk to the API server.
	LoopbackUser = "system:skiff-loopback"
	// MastersGroup is the group that is authorized for everything.
	MastersGroup = "system:masters"
	// servingCN is the CN of the API server's serving certificate.
	servingCN = "kube-apiserver"
)

// defaultServiceIP returns the ClusterIP of the "kubernetes" Service for the
// default --service-cluster-ip-range (10.96.0.0/12). Callers that use another
// range pass its first IP as an extra SAN.
func defaultServiceIP() net.IP { return net.IPv4(10, 96, 0, 1) }

// PKI holds the cluster's certificates and keys, all PEM files under
// <dataDir>/pki. A PKI returned by EnsurePKI is immutable and safe for
// concurrent use; its byte slices must not be modified by callers.
type PKI struct {
	// Dir is the directory holding the PEM files (<dataDir>/pki).
	Dir string
	// CACertPEM is the CA certificate, PEM encoded, as embedded in kubeconfigs.
	CACertPEM []byte
	// CA is the parsed CA certificate; never nil.
	CA *x509.Certificate
	// CAKey is the CA's private key; it signs every certificate of the cluster.
	CAKey crypto.Signer
	// ServingCert is the API server's serving certificate (Leaf is set).
	ServingCert tls.Certificate
	// AdminCertPEM and AdminKeyPEM are the admin client credentials
	// (CN=kubernetes-admin, O=system:masters) written into admin.kubeconfig.
	AdminCertPEM, AdminKeyPEM []byte
	// LoopbackCertPEM and LoopbackKeyPEM are the client credentials of the
	// in-process components (CN=system:skiff-loopback, O=system:masters).
	LoopbackCertPEM, LoopbackKeyPEM []byte
	// ServiceAccountKey signs ServiceAccount tokens (sa.key).
	ServiceAccountKey crypto.Signer
	// ServiceAccountPublicKeyPEM verifies ServiceAccount tokens (sa.pub).
	ServiceAccountPublicKeyPEM []byte
	// Generated lists the files (base names) that this EnsurePKI call wrote,
	// in creation order; empty when everything was reused. Meant for logging.
	Generated []string
}

// pkiOptions are the inputs of ensurePKI that EnsurePKI takes from the
// environment; tests set them to make runs deterministic.
type pkiOptions struct {
	now      time.Time
	hostname string
}

// EnsurePKI loads the PKI from dataDir, creating what is missing on first
// start: a CA valid for 10 years; an API server serving certificate with SANs
// for 127.0.0.1, ::1, localhost, the hostname, kubernetes,
// kubernetes.default, kubernetes.default.svc,
// kubernetes.default.svc.cluster.local, 10.96.0.1 and extraSANs (each an IP
// address or a DNS name); the admin and loopback client certificates; and the
// ServiceAccount signing key pair sa.key/sa.pub. Keys are ECDSA P-256.
//
// On restart existing files are reused. The CA is never regenerated while
// ca.crt exists. A leaf certificate is reissued only when it is missing,
// unreadable, not signed by the CA, within 30 days of expiry, or (for the
// serving certificate) lacks one of the wanted SANs. Private keys are written
// with mode 0600 in a 0700 directory.
func EnsurePKI(dataDir string, extraSANs []string) (*PKI, error) {
	hostname, err := os.Hostname()
	if err != nil {
		// A missing hostname only costs one SAN; the IPs and localhost remain.
		hostname = ""
	}
	return ensurePKI(dataDir, extraSANs, pkiOptions{now: time.Now(), hostname: hostname})
}

func ensurePKI(dataDir string, extraSANs []string, opts pkiOptions) (*PKI, error) {
	if dataDir == "" {
		return nil, errors.New("pki: data dir is empty; pass --data-dir")
	}
	dir := filepath.Join(dataDir, "pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: create %s: %w (check that the data dir is writable)", dir, err)
	}
	p := &PKI{Dir: dir}
	if err := p.ensureCA(opts.now); err != nil {
		return nil, err
	}

	ips, dnsNames := servingSANs(opts.hostname, extraSANs)
	servingPEM, servingKeyPEM, err := p.ensureLeaf(servingCertFile, servingKeyFile, opts.now,
		func(c *x509.Certificate) bool { return hasSANs(c, ips, dnsNames) },
		func() ([]byte, []byte, error) {
			return p.issue(&x509.Certificate{
				Subject:     pkix.Name{CommonName: servingCN},
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
				IPAddresses: ips,
				DNSNames:    dnsNames,
			}, opts.now, leafValidity)
		})
	if err != nil {
		return nil, err
	}
	p.ServingCert, err = tls.X509KeyPair(servingPEM, servingKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: load serving certificate: %w", err)
	}

	p.AdminCertPEM, p.AdminKeyPEM, err = p.ensureClient(adminCertFile, adminKeyFile, AdminUser, opts.now)
	if err != nil {
		return nil, err
	}
	p.LoopbackCertPEM, p.LoopbackKeyPEM, err = p.ensureClient(loopbackCertFile, loopbackKeyFile, LoopbackUser, opts.now)
	if err != nil {
		return nil, err
	}
	if err := p.ensureServiceAccountKey(); err != nil {
		return nil, err
	}
	return p, nil
}

// ensureCA loads ca.crt/ca.key or, when ca.crt does not exist, creates both.
// ca.crt is written last, so its presence means the pair is complete; a
// ca.key without ca.crt is the leftover of an interrupted first start and is
// replaced.
func (p *PKI) ensureCA(now time.Time) error {
	certPath, keyPath := filepath.Join(p.Dir, caCertFile), filepath.Join(p.Dir, caKeyFile)
	certPEM, err := os.ReadFile(certPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return p.createCA(now)
	case err != nil:
		return fmt.Errorf("pki: read %s: %w", certPath, err)
	}
	certs, err := certutil.ParseCertsPEM(certPEM)
	if err != nil {
		return fmt.Errorf("pki: parse %s: %w (move the pki directory away to create a new CA; every client must then get new credentials)", certPath, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return fmt.Errorf("pki: read CA key %s: %w (the CA cannot sign without it; restore it or move the pki directory away)", keyPath, err)
	}
	key, err := parseSigner(keyPEM)
	if err != nil {
		return fmt.Errorf("pki: parse %s: %w", keyPath, err)
	}
	ca := certs[0]
	if !ca.IsCA {
		return fmt.Errorf("pki: %s is not a CA certificate", certPath)
	}
	if !publicKeysEqual(ca.PublicKey, key.Public()) {
		return fmt.Errorf("pki: %s does not match %s; restore the matching pair", keyPath, certPath)
	}
	p.CACertPEM, p.CA, p.CAKey = certPEM, ca, key
	return nil
}

func (p *PKI) createCA(now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pki: generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return fmt.Errorf("pki: create CA: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// The timestamp tells a regenerated CA apart from its predecessor in
		// error messages about unknown authorities.
		Subject:               pkix.Name{CommonName: fmt.Sprintf("skiff-ca@%d", now.Unix())},
		NotBefore:             now.Add(-backdate).UTC(),
		NotAfter:              now.Add(caValidity).UTC(),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("pki: create CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("pki: parse new CA certificate: %w", err)
	}
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return fmt.Errorf("pki: encode CA key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: certutil.CertificateBlockType, Bytes: der})
	if err := p.write(caKeyFile, keyPEM, 0o600); err != nil {
		return err
	}
	if err := p.write(caCertFile, certPEM, 0o644); err != nil {
		return err
	}
	p.CACertPEM, p.CA, p.CAKey = certPEM, ca, key
	return nil
}

// ensureLeaf returns the PEM pair stored in certFile/keyFile if it is still
// usable (see loadLeaf) and accepted by ok, and otherwise the pair made by
// issue, which it stores.
func (p *PKI) ensureLeaf(certFile, keyFile string, now time.Time, ok func(*x509.Certificate) bool, issue func() ([]byte, []byte, error)) ([]byte, []byte, error) {
	if certPEM, keyPEM, leaf := p.loadLeaf(certFile, keyFile, now); leaf != nil && ok(leaf) {
		return certPEM, keyPEM, nil
	}
	certPEM, keyPEM, err := issue()
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue %s: %w", certFile, err)
	}
	// Key first: a crash in between leaves a cert that no longer matches its
	// key, which loadLeaf rejects, so the next start simply reissues.
	if err := p.write(keyFile, keyPEM, 0o600); err != nil {
		return nil, nil, err
	}
	if err := p.write(certFile, certPEM, 0o644); err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, nil
}

// loadLeaf reads a stored pair and returns it with the parsed certificate if
// it may be reused: both files readable, key matching the certificate, signed
// by the current CA and valid for at least renewBefore. Otherwise leaf is
// nil. Any failure just means "reissue", because leaves are cheap and derived
// entirely from the CA.
func (p *PKI) loadLeaf(certFile, keyFile string, now time.Time) (certPEM, keyPEM []byte, leaf *x509.Certificate) {
	certPEM, err := os.ReadFile(filepath.Join(p.Dir, certFile))
	if err != nil {
		return nil, nil, nil
	}
	keyPEM, err = os.ReadFile(filepath.Join(p.Dir, keyFile))
	if err != nil {
		return nil, nil, nil
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, nil
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.CA)
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now.Add(renewBefore),
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, nil, nil
	}
	return certPEM, keyPEM, pair.Leaf
}

func (p *PKI) ensureClient(certFile, keyFile, cn string, now time.Time) ([]byte, []byte, error) {
	return p.ensureLeaf(certFile, keyFile, now,
		func(c *x509.Certificate) bool {
			return c.Subject.CommonName == cn && slices.Equal(c.Subject.Organization, []string{MastersGroup})
		},
		func() ([]byte, []byte, error) {
			return p.issueClientCert(cn, []string{MastersGroup}, now, leafValidity)
		})
}

// ensureServiceAccountKey loads sa.key or creates it, and makes sure sa.pub
// holds its public half. The key is never rotated here: rotating it would
// invalidate every ServiceAccount token in the cluster.
func (p *PKI) ensureServiceAccountKey() error {
	keyPath := filepath.Join(p.Dir, saKeyFile)
	keyPEM, err := os.ReadFile(keyPath)
	var key crypto.Signer
	switch {
	case errors.Is(err, fs.ErrNotExist):
		ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return fmt.Errorf("pki: generate service account key: %w", err)
		}
		if keyPEM, err = keyutil.MarshalPrivateKeyToPEM(ecKey); err != nil {
			return fmt.Errorf("pki: encode service account key: %w", err)
		}
		if err := p.write(saKeyFile, keyPEM, 0o600); err != nil {
			return err
		}
		key = ecKey
	case err != nil:
		return fmt.Errorf("pki: read %s: %w", keyPath, err)
	default:
		if key, err = parseSigner(keyPEM); err != nil {
			return fmt.Errorf("pki: parse %s: %w (restore it; a new key invalidates all ServiceAccount tokens)", keyPath, err)
		}
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return fmt.Errorf("pki: encode service account public key: %w", err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if existing, err := os.ReadFile(filepath.Join(p.Dir, saPubFile)); err != nil || !bytes.Equal(existing, pubPEM) {
		if err := p.write(saPubFile, pubPEM, 0o644); err != nil {
			return err
		}
	}
	p.ServiceAccountKey, p.ServiceAccountPublicKeyPEM = key, pubPEM
	return nil
}

// IssueClientCert signs a client certificate for the user cn in the groups
// orgs (the API server maps CN to the user name and O to groups), valid for
// validity but never beyond the CA's expiry. It returns PEM-encoded
// certificate and ECDSA P-256 key; nothing is written to disk. Safe for
// concurrent use.
func (p *PKI) IssueClientCert(cn string, orgs []string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	certPEM, keyPEM, err = p.issueClientCert(cn, orgs, time.Now(), validity)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue client certificate: %w", err)
	}
	return certPEM, keyPEM, nil
}

// IssueServingCert signs a serving certificate for cn with the given IP
// and DNS SANs (a kubelet's HTTPS port), valid for validity but never beyond
// the CA's expiry. Nothing is written to disk. Safe for concurrent use.
func (p *PKI) IssueServingCert(cn string, ips []net.IP, dnsNames []string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	certPEM, keyPEM, err = p.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: ips,
		DNSNames:    dnsNames,
	}, time.Now(), validity)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue serving certificate: %w", err)
	}
	return certPEM, keyPEM, nil
}

func (p *PKI) issueClientCert(cn string, orgs []string, now time.Time, validity time.Duration) ([]byte, []byte, error) {
	if cn == "" {
		return nil, nil, errors.New("empty common name; pass the user name")
	}
	if validity <= 0 {
		return nil, nil, fmt.Errorf("validity %v must be positive", validity)
	}
	return p.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: slices.Clone(orgs)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, now, validity)
}

// issue completes tmpl (serial, validity, key usage), generates a key and
// signs the certificate with the CA.
func (p *PKI) issue(tmpl *x509.Certificate, now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	if tmpl.SerialNumber, err = newSerial(); err != nil {
		return nil, nil, err
	}
	tmpl.NotBefore = now.Add(-backdate).UTC()
	tmpl.NotAfter = now.Add(validity).UTC()
	if tmpl.NotAfter.After(p.CA.NotAfter) {
		// A leaf outliving its CA would fail verification anyway.
		tmpl.NotAfter = p.CA.NotAfter
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.CA, key.Public(), p.CAKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate for %q: %w", tmpl.Subject.CommonName, err)
	}
	keyPEM, err = keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: certutil.CertificateBlockType, Bytes: der}), keyPEM, nil
}

// ServerTLSConfig returns a new tls.Config for the API server: it serves
// ServingCert, offers HTTP/2 and HTTP/1.1, and verifies client certificates
// against the CA when a client presents one (tls.VerifyClientCertIfGiven), so
// that bearer-token and anonymous requests still reach authentication. The
// caller owns the returned config and may modify it.
func (p *PKI) ServerTLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(p.CA)
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{p.ServingCert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
		NextProtos:   []string{"h2", "http/1.1"},
	}
}

// write stores data in Dir/name atomically (temp file + rename), so a crash
// never leaves a truncated PEM file behind, and records it in Generated.
func (p *PKI) write(name string, data []byte, perm os.FileMode) error {
	if err := writeFileAtomic(filepath.Join(p.Dir, name), data, perm); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	p.Generated = append(p.Generated, name)
	return nil
}

// writeFileAtomic replaces path with data and mode perm via a temporary file
// in the same directory and a rename.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Remove is a no-op after a successful rename.
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// servingSANs returns the IP and DNS SANs of the serving certificate, without
// duplicates, in a stable order.
func servingSANs(hostname string, extra []string) ([]net.IP, []string) {
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback, defaultServiceIP()}
	dnsNames := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	candidates := append([]string{hostname}, extra...)
	for _, s := range candidates {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if ip := net.ParseIP(s); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		s = strings.ToLower(s)
		if !slices.Contains(dnsNames, s) {
			dnsNames = append(dnsNames, s)
		}
	}
	return ips, dnsNames
}

// hasSANs reports whether c covers every wanted IP and DNS name. Extra SANs
// on c are fine: a removed --tls-san should not force a new certificate.
func hasSANs(c *x509.Certificate, ips []net.IP, dnsNames []string) bool {
	for _, ip := range ips {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	for _, name := range dnsNames {
		if !slices.Contains(c.DNSNames, name) {
			return false
		}
	}
	return true
}

func parseSigner(keyPEM []byte) (crypto.Signer, error) {
	key, err := keyutil.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key of type %T cannot sign", key)
	}
	return signer, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// newSerial returns a random positive 128-bit serial number; RFC 5280 allows
// up to 20 octets and randomness keeps serials unique without bookkeeping.
func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}
