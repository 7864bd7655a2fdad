package cluster

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"path/filepath"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// kubeconfigClusterName is the cluster entry's name in every kubeconfig Skiff
// writes, so that merged kubeconfigs show where an entry came from.
const kubeconfigClusterName = "skiff"

// AdminKubeconfigPath returns where the server writes the admin kubeconfig
// for dataDir, and where `skiff kubectl` looks for it.
func AdminKubeconfigPath(dataDir string) string {
	return filepath.Join(dataDir, "admin.kubeconfig")
}

// WriteKubeconfig writes a kubeconfig for serverURL to path (mode 0600,
// replaced atomically) with the CA and the client certificate and key
// embedded, so the file works when copied elsewhere. The cluster entry is
// named "skiff", the context contextName (default "skiff"), and the user after
// the certificate's common name, as kubeadm does. It fails if certPEM and
// keyPEM are not a matching pair, so a mix-up is caught before a client is.
func WriteKubeconfig(path, serverURL string, caPEM, certPEM, keyPEM []byte, contextName string) error {
	if u, err := url.Parse(serverURL); err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("kubeconfig %s: server URL %q must look like https://host:port", path, serverURL)
	}
	if len(caPEM) == 0 {
		return fmt.Errorf("kubeconfig %s: empty CA certificate", path)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: client certificate and key: %w", path, err)
	}
	if contextName == "" {
		contextName = kubeconfigClusterName
	}
	user := pair.Leaf.Subject.CommonName

	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[kubeconfigClusterName] = &clientcmdapi.Cluster{
		Server:                   serverURL,
		CertificateAuthorityData: caPEM,
	}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{
		ClientCertificateData: certPEM,
		ClientKeyData:         keyPEM,
	}
	cfg.Contexts[contextName] = &clientcmdapi.Context{
		Cluster:  kubeconfigClusterName,
		AuthInfo: user,
	}
	cfg.CurrentContext = contextName

	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: encode: %w", path, err)
	}
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	return nil
}

// WriteAdminKubeconfig writes the admin kubeconfig (user kubernetes-admin in
// system:masters, context "skiff") for serverURL to path, normally
// AdminKubeconfigPath(dataDir). Rewriting it on every start is intended: the
// port may have changed, and the credentials are stable across restarts.
func (p *PKI) WriteAdminKubeconfig(path, serverURL string) error {
	return WriteKubeconfig(path, serverURL, p.CACertPEM, p.AdminCertPEM, p.AdminKeyPEM, kubeconfigClusterName)
}

// LoopbackConfig returns a client config for in-process components that
// authenticates with the loopback certificate (system:skiff-loopback in
// system:masters) and trusts only the cluster CA. The caller owns the result
// and typically sets QPS, Burst and UserAgent per component.
func (p *PKI) LoopbackConfig(serverURL string) *rest.Config {
	return &rest.Config{
		Host: serverURL,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   p.CACertPEM,
			CertData: p.LoopbackCertPEM,
			KeyData:  p.LoopbackKeyPEM,
		},
	}
}
