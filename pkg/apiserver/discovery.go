package apiserver

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net"
	"net/http"
	"sort"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-project/skiff/pkg/registry"
)

// discoveryDoc holds every discovery document, rebuilt as a whole when
// the set of served resources changes (custom resources). Immutable.
type discoveryDoc struct {
	groups        metav1.APIGroupList
	groupByName   map[string]metav1.APIGroup
	resourceLists map[schema.GroupVersion]*metav1.APIResourceList
	// aggregated documents, JSON without apiVersion (set per request).
	aggregatedCore   apidiscoveryv2.APIGroupDiscoveryList
	aggregatedGroups apidiscoveryv2.APIGroupDiscoveryList
}

// subresourceInfo describes a subresource as discovery reports it.
type subresourceInfo struct {
	kind  schema.GroupVersionKind // empty group/version = the parent's
	verbs []string
}

func subresourceFor(r *registry.Resource, sub string) subresourceInfo {
	parent := r.GroupVersionKind()
	switch sub {
	case "status":
		return subresourceInfo{parent, []string{"get", "patch", "update"}}
	case "scale":
		return subresourceInfo{schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}, []string{"get", "patch", "update"}}
	case "binding":
		return subresourceInfo{schema.GroupVersionKind{Version: "v1", Kind: "Binding"}, []string{"create"}}
	case "eviction":
		return subresourceInfo{schema.GroupVersionKind{Group: "policy", Version: "v1", Kind: "Eviction"}, []string{"create"}}
	case "ephemeralcontainers":
		return subresourceInfo{parent, []string{"get", "patch", "update"}}
	case "log":
		return subresourceInfo{parent, []string{"get"}}
	case "exec":
		return subresourceInfo{schema.GroupVersionKind{Version: "v1", Kind: "PodExecOptions"}, []string{"create", "get"}}
	case "attach":
		return subresourceInfo{schema.GroupVersionKind{Version: "v1", Kind: "PodAttachOptions"}, []string{"create", "get"}}
	case "portforward":
		return subresourceInfo{schema.GroupVersionKind{Version: "v1", Kind: "PodPortForwardOptions"}, []string{"create", "get"}}
	case "proxy":
		kind := map[string]string{"pods": "PodProxyOptions", "nodes": "NodeProxyOptions", "services": "ServiceProxyOptions"}[r.Resource]
		return subresourceInfo{schema.GroupVersionKind{Version: "v1", Kind: kind}, []string{"create", "delete", "get", "patch", "update"}}
	case "finalize":
		return subresourceInfo{parent, []string{"update"}}
	case "token":
		return subresourceInfo{schema.GroupVersionKind{Group: "authentication.k8s.io", Version: "v1", Kind: "TokenRequest"}, []string{"create"}}
	case "approval":
		return subresourceInfo{parent, []string{"get", "patch", "update"}}
	}
	return subresourceInfo{parent, []string{"get"}}
}

func storageVersionHash(gvk schema.GroupVersionKind) string {
	sum := sha256.Sum256([]byte(gvk.Group + "/" + gvk.Version + "/" + gvk.Kind))
	return base64.StdEncoding.EncodeToString(sum[:8])
}

// buildDiscovery computes the documents from s.endpoints. Callers hold
// s.mu or own s exclusively.
func (s *Server) buildDiscovery() *discoveryDoc {
	// Group order: built-ins in registry order, then custom groups sorted.
	var order []string
	seen := map[string]bool{}
	for _, r := range registry.Builtin() {
		if !seen[r.Group] {
			seen[r.Group] = true
			order = append(order, r.Group)
		}
	}
	var custom []string
	versionsByGroup := map[string][]string{}
	resourcesByGV := map[schema.GroupVersion][]*endpoint{}
	for _, ep := range s.endpoints {
		gv := schema.GroupVersion{Group: ep.res.Group, Version: ep.res.Version}
		if len(resourcesByGV[gv]) == 0 {
			versionsByGroup[ep.res.Group] = append(versionsByGroup[ep.res.Group], ep.res.Version)
		}
		resourcesByGV[gv] = append(resourcesByGV[gv], ep)
		if !seen[ep.res.Group] {
			seen[ep.res.Group] = true
			custom = append(custom, ep.res.Group)
		}
	}
	sort.Strings(custom)
	order = append(order, custom...)

	d := &discoveryDoc{groupByName: map[string]metav1.APIGroup{}, resourceLists: map[schema.GroupVersion]*metav1.APIResourceList{}}
	d.groups.Kind, d.groups.APIVersion = "APIGroupList", "v1"
	for _, g := range order {
		versions := versionsByGroup[g]
		if len(versions) == 0 {
			continue
		}
		sortVersions(versions)
		var aggVersions []apidiscoveryv2.APIVersionDiscovery
		group := metav1.APIGroup{TypeMeta: metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}, Name: g}
		for _, v := range versions {
			gv := schema.GroupVersion{Group: g, Version: v}
			group.Versions = append(group.Versions, metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: v})
			eps := resourcesByGV[gv]
			sort.Slice(eps, func(i, j int) bool { return eps[i].res.Resource < eps[j].res.Resource })
			list := &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv.String()}
			var aggResources []apidiscoveryv2.APIResourceDiscovery
			for _, ep := range eps {
				r := ep.res
				list.APIResources = append(list.APIResources, metav1.APIResource{
					Name: r.Resource, SingularName: r.Singular, Namespaced: r.Namespaced, Kind: r.Kind,
					Verbs: r.Verbs, ShortNames: r.ShortNames, Categories: r.Categories,
					StorageVersionHash: storageVersionHash(ep.storageGVK),
				})
				scope := apidiscoveryv2.ScopeCluster
				if r.Namespaced {
					scope = apidiscoveryv2.ScopeNamespace
				}
				agg := apidiscoveryv2.APIResourceDiscovery{
					Resource: r.Resource, SingularResource: r.Singular, Scope: scope, Verbs: r.Verbs,
					ShortNames: r.ShortNames, Categories: r.Categories,
				}
				if r.Resource != "bindings" || r.Group != "" {
					agg.ResponseKind = &metav1.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
				} else {
					agg.ResponseKind = &metav1.GroupVersionKind{Version: "v1", Kind: "Binding"}
				}
				for _, sub := range r.Subresources {
					si := subresourceFor(r, sub)
					list.APIResources = append(list.APIResources, metav1.APIResource{
						Name: r.Resource + "/" + sub, Namespaced: r.Namespaced, Kind: si.kind.Kind,
						Group: groupIfDifferent(si.kind, r), Version: versionIfDifferent(si.kind, r), Verbs: si.verbs,
					})
					agg.Subresources = append(agg.Subresources, apidiscoveryv2.APISubresourceDiscovery{
						Subresource:  sub,
						ResponseKind: &metav1.GroupVersionKind{Group: si.kind.Group, Version: si.kind.Version, Kind: si.kind.Kind},
						Verbs:        si.verbs,
					})
				}
				aggResources = append(aggResources, agg)
			}
			d.resourceLists[gv] = list
			aggVersions = append(aggVersions, apidiscoveryv2.APIVersionDiscovery{Version: v, Resources: aggResources, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent})
		}
		group.PreferredVersion = group.Versions[0]
		aggGroup := apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: g}, Versions: aggVersions}
		if g == "" {
			d.aggregatedCore.Items = append(d.aggregatedCore.Items, aggGroup)
			continue
		}
		d.groups.Groups = append(d.groups.Groups, group)
		d.groupByName[g] = group
		d.aggregatedGroups.Items = append(d.aggregatedGroups.Items, aggGroup)
	}
	s.addMetricsDiscovery(d)
	return d
}

func groupIfDifferent(k schema.GroupVersionKind, r *registry.Resource) string {
	if k.Group != r.Group || k.Version != r.Version {
		return k.Group
	}
	return ""
}

func versionIfDifferent(k schema.GroupVersionKind, r *registry.Resource) string {
	if k.Group != r.Group || k.Version != r.Version {
		return k.Version
	}
	return ""
}

// sortVersions orders versions by Kubernetes version priority (v2 > v1 >
// v1beta1 > v1alpha1), the preferred version first.
func sortVersions(vs []string) {
	sort.SliceStable(vs, func(i, j int) bool { return versionPriority(vs[i]) > versionPriority(vs[j]) })
}

func versionPriority(v string) int {
	// major*100 + stage (ga 3, beta 2, alpha 1) * 10 + minor
	var major, minor, stage int
	rest := strings.TrimPrefix(v, "v")
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		major = major*10 + int(rest[i]-'0')
		i++
	}
	stage = 3
	switch {
	case strings.HasPrefix(rest[i:], "beta"):
		stage, i = 2, i+4
	case strings.HasPrefix(rest[i:], "alpha"):
		stage, i = 1, i+5
	case i < len(rest):
		return -1
	}
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		minor = minor*10 + int(rest[i]-'0')
		i++
	}
	return stage*10000 + major*100 + minor
}

func (s *Server) discoveryDoc() *discoveryDoc {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.discovery
}

// aggregatedVersion returns "v2" or "v2beta1" when the client accepts
// aggregated discovery in that version (first preference wins).
func aggregatedVersion(r *http.Request) string {
	for _, clause := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(clause))
		if err != nil {
			continue
		}
		if mt == "application/json" && params["g"] == "apidiscovery.k8s.io" && params["as"] == "APIGroupDiscoveryList" &&
			(params["v"] == "v2" || params["v"] == "v2beta1") {
			return params["v"]
		}
		if mt == "application/json" && params["as"] == "" {
			return ""
		}
	}
	return ""
}

func writeAggregated(w http.ResponseWriter, version string, list apidiscoveryv2.APIGroupDiscoveryList) {
	list.APIVersion = "apidiscovery.k8s.io/" + version
	list.Kind = "APIGroupDiscoveryList"
	if list.Items == nil {
		list.Items = []apidiscoveryv2.APIGroupDiscovery{}
	}
	w.Header().Set("Content-Type", "application/json;g=apidiscovery.k8s.io;v="+version+";as=APIGroupDiscoveryList")
	w.Header().Set("Cache-Control", "no-cache, private")
	writeJSON(w, http.StatusOK, list)
}

func writeJSON(w http.ResponseWriter, code int, v interface{}) {
	data, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(code)
	_, _ = w.Write(data)
}

// serveAPIVersions answers /api.
func (s *Server) serveAPIVersions(w http.ResponseWriter, r *http.Request) {
	d := s.discoveryDoc()
	if v := aggregatedVersion(r); v != "" {
		writeAggregated(w, v, d.aggregatedCore)
		return
	}
	writeJSON(w, http.StatusOK, &metav1.APIVersions{
		TypeMeta:                   metav1.TypeMeta{Kind: "APIVersions"},
		Versions:                   []string{"v1"},
		ServerAddressByClientCIDRs: s.serverAddresses(r),
	})
}

// serveAPIGroupList answers /apis.
func (s *Server) serveAPIGroupList(w http.ResponseWriter, r *http.Request) {
	d := s.discoveryDoc()
	if v := aggregatedVersion(r); v != "" {
		writeAggregated(w, v, d.aggregatedGroups)
		return
	}
	writeJSON(w, http.StatusOK, &d.groups)
}

func (s *Server) serverAddresses(r *http.Request) []metav1.ServerAddressByClientCIDR {
	addr := s.cfg.ExternalAddress
	if addr == "" {
		addr = r.Host
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "443")
	}
	return []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: addr}}
}

// serveDiscoveryPath answers /api/v1, /apis/<group> and /apis/<group>/<version>.
func (s *Server) serveDiscoveryPath(w http.ResponseWriter, r *http.Request) {
	d := s.discoveryDoc()
	parts := splitPath(r.URL.Path)
	switch {
	case len(parts) == 1 && parts[0] == "api":
		s.serveAPIVersions(w, r)
		return
	case len(parts) == 1 && parts[0] == "apis":
		s.serveAPIGroupList(w, r)
		return
	case len(parts) == 2 && parts[0] == "api":
		if list, ok := d.resourceLists[schema.GroupVersion{Version: parts[1]}]; ok {
			writeJSON(w, http.StatusOK, list)
			return
		}
	case len(parts) == 2 && parts[0] == "apis":
		if g, ok := d.groupByName[parts[1]]; ok {
			writeJSON(w, http.StatusOK, &g)
			return
		}
	case len(parts) == 3 && parts[0] == "apis":
		if list, ok := d.resourceLists[schema.GroupVersion{Group: parts[1], Version: parts[2]}]; ok {
			writeJSON(w, http.StatusOK, list)
			return
		}
	}
	s.writeError(w, r, notFoundPath())
}

// rootPaths lists the paths "/" advertises.
func (s *Server) rootPaths() []string {
	d := s.discoveryDoc()
	paths := []string{"/api", "/api/v1", "/apis", "/healthz", "/livez", "/metrics", "/openapi/v2", "/openapi/v3", "/readyz", "/version"}
	for _, g := range d.groups.Groups {
		paths = append(paths, "/apis/"+g.Name)
		for _, v := range g.Versions {
			paths = append(paths, "/apis/"+v.GroupVersion)
		}
	}
	sort.Strings(paths)
	return paths
}
