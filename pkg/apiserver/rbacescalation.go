package apiserver

import (
	"context"
	"fmt"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// RBAC's escalation check, as upstream's RBAC registry: nobody grants
// permissions they do not hold. Writing a Role or ClusterRole needs every
// permission in it (or the "escalate" verb on it); writing a binding needs
// every permission of the role it references (or the "bind" verb on that
// role). system:masters, and the server's own writes (no user), pass.

const rbacGroup = "rbac.authorization.k8s.io"

// checkEscalation refuses obj (an RBAC object being created or updated
// by the request's user) when it would grant more than the user holds.
// Only the RBAC authorizer can answer this; under other modes it passes.
func (s *Server) checkEscalation(ctx context.Context, obj runtime.Object) error {
	user := userFrom(ctx)
	if s.rbac == nil || user == nil || contains(user.Groups, mastersGroup) {
		return nil
	}
	var (
		gr        schema.GroupResource
		name, ns  string
		verb      string
		checkName string
		rules     []rbacv1.PolicyRule
		err       error
	)
	switch o := obj.(type) {
	case *rbacv1.ClusterRole:
		gr, name, verb, checkName = schema.GroupResource{Group: rbacGroup, Resource: "clusterroles"}, o.Name, "escalate", o.Name
		rules = o.Rules
		if o.AggregationRule != nil {
			// An aggregated role may come to hold anything.
			rules = []rbacv1.PolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}, {Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}}
		}
	case *rbacv1.Role:
		gr, name, ns, verb, checkName = schema.GroupResource{Group: rbacGroup, Resource: "roles"}, o.Name, o.Namespace, "escalate", o.Name
		rules = o.Rules
	case *rbacv1.ClusterRoleBinding:
		gr, name, verb, checkName = schema.GroupResource{Group: rbacGroup, Resource: "clusterrolebindings"}, o.Name, "bind", o.RoleRef.Name
		rules, err = s.rbac.boundRules(o.RoleRef, "")
	case *rbacv1.RoleBinding:
		gr, name, ns, verb, checkName = schema.GroupResource{Group: rbacGroup, Resource: "rolebindings"}, o.Name, o.Namespace, "bind", o.RoleRef.Name
		rules, err = s.rbac.boundRules(o.RoleRef, o.Namespace)
	default:
		return nil
	}
	// The escalate/bind verb is checked on the role itself.
	roleResource := gr.Resource
	switch verb {
	case "bind":
		roleResource = "clusterroles"
		if b, ok := obj.(*rbacv1.RoleBinding); ok && b.RoleRef.Kind == "Role" {
			roleResource = "roles"
		}
	}
	allowed, _, aerr := s.cfg.Authorizer.Authorize(ctx, Attributes{User: user, Verb: verb, IsResource: true,
		APIGroup: rbacGroup, Resource: roleResource, Namespace: ns, Name: checkName})
	if aerr == nil && allowed {
		return nil
	}
	if err != nil {
		// A binding to a role that does not exist (yet) grants nothing the
		// user could be checked against: upstream refuses it without bind.
		return apierrors.NewForbidden(gr, name, fmt.Errorf("user %q (groups=%q) is attempting to grant RBAC permissions not currently held: %w", user.Name, user.Groups, err))
	}
	held, _ := s.rbac.rulesFor(user, ns)
	var missing []string
	for _, r := range rules {
		for _, simple := range breakDown(r) {
			if !coveredBy(held, simple) {
				missing = append(missing, describeRule(simple))
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return apierrors.NewForbidden(gr, name, fmt.Errorf("user %q (groups=%q) is attempting to grant RBAC permissions not currently held:\n%s",
		user.Name, user.Groups, strings.Join(missing, "\n")))
}

// boundRules resolves what a binding in ns ("" for cluster) would grant.
func (a *rbacAuthorizer) boundRules(ref rbacv1.RoleRef, ns string) ([]rbacv1.PolicyRule, error) {
	d := a.readDerived()
	defer a.mu.RUnlock()
	return a.roleRules(d, ref, ns)
}

// breakDown splits a rule into rules of one verb, group, resource and
// resource name (or one verb and URL), so coverage can be checked piecewise.
func breakDown(r rbacv1.PolicyRule) []rbacv1.PolicyRule {
	var out []rbacv1.PolicyRule
	for _, v := range r.Verbs {
		for _, u := range r.NonResourceURLs {
			out = append(out, rbacv1.PolicyRule{Verbs: []string{v}, NonResourceURLs: []string{u}})
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				if len(r.ResourceNames) == 0 {
					out = append(out, rbacv1.PolicyRule{Verbs: []string{v}, APIGroups: []string{g}, Resources: []string{res}})
					continue
				}
				for _, n := range r.ResourceNames {
					out = append(out, rbacv1.PolicyRule{Verbs: []string{v}, APIGroups: []string{g}, Resources: []string{res}, ResourceNames: []string{n}})
				}
			}
		}
	}
	return out
}

// coveredBy reports whether one of held grants the simple rule s. A
// wildcard in s is covered only by the same wildcard.
func coveredBy(held []rbacv1.PolicyRule, s rbacv1.PolicyRule) bool {
	for _, h := range held {
		if !hasOrStar(h.Verbs, s.Verbs[0]) {
			continue
		}
		if len(s.NonResourceURLs) > 0 {
			u := s.NonResourceURLs[0]
			for _, hu := range h.NonResourceURLs {
				if hu == "*" || hu == u || (strings.HasSuffix(hu, "*") && strings.HasPrefix(u, strings.TrimSuffix(hu, "*"))) {
					return true
				}
			}
			continue
		}
		if !hasOrStar(h.APIGroups, s.APIGroups[0]) {
			continue
		}
		res := s.Resources[0]
		resOK := false
		for _, hr := range h.Resources {
			if hr == "*" || hr == res {
				resOK = true
			}
			if _, sub, ok := strings.Cut(res, "/"); ok && hr == "*/"+sub {
				resOK = true
			}
		}
		if !resOK {
			continue
		}
		if len(h.ResourceNames) == 0 || (len(s.ResourceNames) == 1 && contains(h.ResourceNames, s.ResourceNames[0])) {
			return true
		}
	}
	return false
}

// describeRule formats a rule as upstream's escalation error does.
func describeRule(r rbacv1.PolicyRule) string {
	q := func(list []string) string {
		parts := make([]string, len(list))
		for i, s := range list {
			parts[i] = fmt.Sprintf("%q", s)
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	var b strings.Builder
	b.WriteString("{")
	var fields []string
	if len(r.APIGroups) > 0 {
		fields = append(fields, "APIGroups:"+q(r.APIGroups))
	}
	if len(r.Resources) > 0 {
		fields = append(fields, "Resources:"+q(r.Resources))
	}
	if len(r.ResourceNames) > 0 {
		fields = append(fields, "ResourceNames:"+q(r.ResourceNames))
	}
	if len(r.NonResourceURLs) > 0 {
		fields = append(fields, "NonResourceURLs:"+q(r.NonResourceURLs))
	}
	fields = append(fields, "Verbs:"+q(r.Verbs))
	b.WriteString(strings.Join(fields, ", "))
	b.WriteString("}")
	return b.String()
}
