package proxy

import (
	"crypto/sha256"
	"encoding/base32"
)

// hash16 returns 16 base32 characters of the SHA-256 of the parts: stable
// across restarts and versions (chain names are the proxy's memory of what
// it wrote), short enough for iptables' 28-character chain names.
func hash16(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
	}
	return base32.StdEncoding.EncodeToString(h.Sum(nil))[:16]
}

// The iptables chain of a service port ("KUBE-SVC-"), of its external
// traffic ("KUBE-EXT-") and of one of its endpoints ("KUBE-SEP-"), in
// upstream's KUBE-SVC/KUBE-EXT/KUBE-SEP scheme.
func iptSvcChain(sp *servicePort) string { return "KUBE-SVC-" + hash16(sp.name, string(sp.protocol)) }
func iptExtChain(sp *servicePort) string { return "KUBE-EXT-" + hash16(sp.name, string(sp.protocol)) }
func iptSepChain(sp *servicePort, ep endpoint) string {
	return "KUBE-SEP-" + hash16(sp.name, string(sp.protocol), ep.String())
}

// nftHash is the short hash that keeps nft names of different ports
// distinct even when the readable part is ambiguous.
func nftHash(sp *servicePort) string { return hash16(sp.chainBase)[:8] }

// nft object names, readable like upstream's nftables kube-proxy:
// service-<hash>-ns/name/proto/port and
// endpoint-<hash>-ns/name/proto/port__ip/port.
func nftSvcChain(sp *servicePort) string { return "service-" + nftHash(sp) + "-" + sp.chainBase }
func nftExtChain(sp *servicePort) string { return "external-" + nftHash(sp) + "-" + sp.chainBase }
func nftEpChain(sp *servicePort, ep endpoint) string {
	return "endpoint-" + hash16(sp.chainBase, ep.String())[:8] + "-" + sp.chainBase + "__" + ep.ip.String() + "/" + itoa(ep.port)
}
func nftAffinitySet(sp *servicePort, ep endpoint) string {
	return "affinity-" + hash16(sp.chainBase, ep.String())[:8] + "-" + sp.chainBase + "__" + ep.ip.String() + "/" + itoa(ep.port)
}
