package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Upstream's impersonation headers (kubectl --as, --as-group, --as-uid).
const (
	impersonateUser       = "Impersonate-User"
	impersonateGroup      = "Impersonate-Group"
	impersonateUID        = "Impersonate-Uid"
	impersonateExtraPrefx = "Impersonate-Extra-"
)

// impersonate applies the Impersonate-* headers of r, as upstream's
// impersonation filter: the authenticated user needs the "impersonate"
// verb on each identity asked for (users, groups, serviceaccounts in
// their namespace, uids and userextras of authentication.k8s.io), and the
// request then runs as that identity. Without the headers it returns user
// unchanged. The headers are removed from r either way.
func (s *Server) impersonate(ctx context.Context, r *http.Request, user *UserInfo) (*UserInfo, error) {
	name := r.Header.Get(impersonateUser)
	groupsAsked := r.Header.Values(impersonateGroup)
	uid := r.Header.Get(impersonateUID)
	extra := map[string][]string{}
	for k, vs := range r.Header {
		if rest, ok := strings.CutPrefix(k, impersonateExtraPrefx); ok {
			key, err := url.PathUnescape(rest)
			if err != nil {
				key = rest
			}
			extra[strings.ToLower(key)] = append(extra[strings.ToLower(key)], vs...)
		}
	}
	for k := range r.Header {
		if strings.HasPrefix(k, "Impersonate-") {
			r.Header.Del(k)
		}
	}
	if name == "" {
		if len(groupsAsked) > 0 || uid != "" || len(extra) > 0 {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("requested %v without impersonating a user", impersonationSummary(groupsAsked, uid, extra)))
		}
		return user, nil
	}
	check := func(a Attributes) error {
		a.User, a.Verb, a.IsResource = user, "impersonate", true
		allowed, reason, err := s.cfg.Authorizer.Authorize(ctx, a)
		if err != nil {
			return apierrors.NewInternalError(fmt.Errorf("authorize impersonation: %w", err))
		}
		if !allowed {
			return forbidden(a, reason)
		}
		return nil
	}
	out := &UserInfo{Name: name, UID: uid, Groups: append([]string(nil), groupsAsked...)}
	if ns, sa, ok := splitServiceAccountUser(name); ok {
		if err := check(Attributes{Resource: "serviceaccounts", Namespace: ns, Name: sa}); err != nil {
			return nil, err
		}
		if len(groupsAsked) == 0 {
			// A ServiceAccount's groups are fixed; add them.
			out.Groups = serviceAccountGroups(ns)
		}
	} else if err := check(Attributes{Resource: "users", Name: name}); err != nil {
		return nil, err
	}
	for _, g := range groupsAsked {
		if err := check(Attributes{Resource: "groups", Name: g}); err != nil {
			return nil, err
		}
	}
	if uid != "" {
		if err := check(Attributes{APIGroup: "authentication.k8s.io", Resource: "uids", Name: uid}); err != nil {
			return nil, err
		}
	}
	for k, vs := range extra {
		for _, v := range vs {
			if err := check(Attributes{APIGroup: "authentication.k8s.io", Resource: "userextras", Subresource: k, Name: v}); err != nil {
				return nil, err
			}
		}
		if out.Extra == nil {
			out.Extra = map[string][]string{}
		}
		out.Extra[k] = vs
	}
	if name == "system:anonymous" {
		if !contains(out.Groups, "system:unauthenticated") {
			out.Groups = append(out.Groups, "system:unauthenticated")
		}
	} else if !contains(out.Groups, "system:authenticated") && !contains(out.Groups, "system:unauthenticated") {
		out.Groups = append(out.Groups, "system:authenticated")
	}
	return out, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func impersonationSummary(groups []string, uid string, extra map[string][]string) string {
	var parts []string
	for _, g := range groups {
		parts = append(parts, impersonateGroup+"="+g)
	}
	if uid != "" {
		parts = append(parts, impersonateUID+"="+uid)
	}
	for k, vs := range extra {
		for _, v := range vs {
			parts = append(parts, impersonateExtraPrefx+k+"="+v)
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}
