package apiserver

import (
	"net/http"
	"net/url"
	"strings"
)

// requestInfo is what the router learned from a resource request's path,
// method and query: the same attributes upstream's RequestInfo carries, and
// what authorization decides on.
type requestInfo struct {
	IsResource  bool
	Path        string
	Verb        string // get list watch create update patch delete deletecollection
	Group       string
	Version     string
	Namespace   string
	Resource    string
	Subresource string
	Name        string
	// legacyWatch is true for /api/v1/watch/... paths.
	legacyWatch bool
}

// namespaceSubresources are subresources of a namespace object itself
// rather than resources inside the namespace.
func namespaceSubresource(s string) bool { return s == "status" || s == "finalize" }

// parseRequestInfo classifies r. Non-resource paths (/healthz, /version,
// /api, /apis/apps) come back with IsResource false.
func parseRequestInfo(r *http.Request) *requestInfo {
	info := &requestInfo{Path: r.URL.Path, Verb: strings.ToLower(r.Method)}
	parts := splitPath(r.URL.Path)
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		info.Version = parts[1]
		parts = parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		info.Group, info.Version = parts[1], parts[2]
		parts = parts[3:]
	default:
		return info
	}
	info.IsResource = true
	if parts[0] == "watch" {
		info.legacyWatch = true
		parts = parts[1:]
		if len(parts) == 0 {
			info.IsResource = false
			return info
		}
	}
	// namespaces/{ns}/{resource}... is inside a namespace; namespaces/{name}
	// and namespaces/{name}/{status,finalize} are the namespace object itself.
	if parts[0] == "namespaces" && len(parts) > 2 && !namespaceSubresource(parts[2]) {
		info.Namespace = parts[1]
		parts = parts[2:]
	}
	info.Resource = parts[0]
	if len(parts) > 1 {
		info.Name = parts[1]
	}
	if len(parts) > 2 {
		info.Subresource = strings.Join(parts[2:], "/")
	}
	if info.Resource == "namespaces" && info.Name != "" {
		// namespace objects are cluster scoped but upstream reports the
		// namespace attribute as the object's own name.
		info.Namespace = info.Name
	}

	q := r.URL.Query()
	watch := isTrue(q, "watch") || info.legacyWatch
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case watch:
			info.Verb = "watch"
		case info.Name == "":
			info.Verb = "list"
		default:
			info.Verb = "get"
		}
	case http.MethodPost:
		info.Verb = "create"
	case http.MethodPut:
		info.Verb = "update"
	case http.MethodPatch:
		info.Verb = "patch"
	case http.MethodDelete:
		if info.Name == "" {
			info.Verb = "deletecollection"
		} else {
			info.Verb = "delete"
		}
	}
	return info
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func isTrue(q url.Values, key string) bool {
	v := q.Get(key)
	return v == "1" || v == "true" || v == "True"
}
