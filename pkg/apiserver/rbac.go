package apiserver

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// Authorization modes of Config.AuthorizationMode, upstream's names.
const (
	// AuthorizationModeRBAC evaluates RBAC Roles and bindings (the default).
	AuthorizationModeRBAC = "RBAC"
	// AuthorizationModeAlwaysAllow allows every authenticated request.
	AuthorizationModeAlwaysAllow = "AlwaysAllow"
	// AuthorizationModeMastersOnly allows only system:masters (Skiff's mode
	// from before RBAC; no upstream equivalent).
	AuthorizationModeMastersOnly = "MastersOnly"
)

// AuthorizationModes lists the modes Config.AuthorizationMode accepts.
func AuthorizationModes() []string {
	return []string{AuthorizationModeRBAC, AuthorizationModeAlwaysAllow, AuthorizationModeMastersOnly}
}

// mastersGroup is upstream's superuser group: RBAC allows it everything
// without looking at any role.
const mastersGroup = "system:masters"

// rbacAuthorizer is upstream's RBAC authorizer over an in-memory mirror of
// the four RBAC resources, kept current by watches on the server's own
// watch cache (see rbacwatch.go). Safe for concurrent use.
type rbacAuthorizer struct {
	mu sync.RWMutex
	// The mirror, keyed by name or "namespace/name"; objects are never
	// modified once stored. Guarded by mu.
	clusterRoles        map[string]*rbacv1.ClusterRole
	roles               map[string]*rbacv1.Role
	clusterRoleBindings map[string]*rbacv1.ClusterRoleBinding
	roleBindings        map[string]map[string]*rbacv1.RoleBinding // namespace → name → binding
	// derived is computed from the mirror when a request needs it, nil
	// after any change. Guarded by mu.
	derived *rbacDerived
}

// rbacDerived is what requests need that the mirror does not hold
// directly. Immutable once computed.
type rbacDerived struct {
	// aggregated holds the rules of every ClusterRole with an
	// aggregationRule: its own rules plus those of the roles its selectors
	// pick, transitively.
	aggregated map[string][]rbacv1.PolicyRule
	// clusterBindings and nsBindings are the binding names in name order,
	// so that answers (and errors) are deterministic.
	clusterBindings []string
	nsBindings      map[string][]string
}

func newRBACAuthorizer() *rbacAuthorizer {
	return &rbacAuthorizer{
		clusterRoles:        map[string]*rbacv1.ClusterRole{},
		roles:               map[string]*rbacv1.Role{},
		clusterRoleBindings: map[string]*rbacv1.ClusterRoleBinding{},
		roleBindings:        map[string]map[string]*rbacv1.RoleBinding{},
	}
}

// Authorize implements Authorizer: allowed when a rule of a role bound to
// the user (by a ClusterRoleBinding, or a RoleBinding in the request's
// namespace) covers the request. system:masters is allowed everything.
// Denials explain roles that could not be resolved; allows carry no
// reason (see explain).
func (a *rbacAuthorizer) Authorize(_ context.Context, attrs Attributes) (bool, string, error) {
	allowed, reason := a.authorize(attrs, false)
	return allowed, reason, nil
}

// explain is Authorize with upstream's reason for an allow too ("RBAC:
// allowed by RoleBinding ..."), as access reviews report it.
func (a *rbacAuthorizer) explain(attrs Attributes) (bool, string) {
	return a.authorize(attrs, true)
}

func (a *rbacAuthorizer) authorize(attrs Attributes, explainAllow bool) (bool, string) {
	if attrs.User == nil {
		return false, ""
	}
	for _, g := range attrs.User.Groups {
		if g == mastersGroup {
			return true, ""
		}
	}
	allowed, reason := false, ""
	errs := a.visitRules(attrs.User, attrs.Namespace, func(source *ruleSource, r *rbacv1.PolicyRule) bool {
		if ruleAllows(attrs, r) {
			allowed = true
			if explainAllow {
				reason = "RBAC: allowed by " + source.String()
			}
		}
		return !allowed
	})
	if allowed {
		return true, reason
	}
	if len(errs) > 0 {
		return false, "RBAC: " + joinErrors(errs)
	}
	return false, ""
}

func joinErrors(errs []error) string {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	if len(msgs) == 1 {
		return msgs[0]
	}
	return "[" + strings.Join(msgs, ", ") + "]"
}

// rulesFor returns every rule that applies to user in namespace ns (all
// ClusterRoleBindings, plus RoleBindings of ns), and the errors met
// resolving roles (missing roles), as SelfSubjectRulesReview reports them.
func (a *rbacAuthorizer) rulesFor(user *UserInfo, ns string) ([]rbacv1.PolicyRule, []error) {
	var rules []rbacv1.PolicyRule
	errs := a.visitRules(user, ns, func(_ *ruleSource, r *rbacv1.PolicyRule) bool {
		rules = append(rules, *r)
		return true
	})
	return rules, errs
}

// visitRules calls visit for each rule of each role bound to user, cluster
// bindings first, then the bindings of namespace ns, until visit returns
// false; source describes the binding as upstream's allow reasons do. It
// returns the errors of bindings whose role does not exist.
func (a *rbacAuthorizer) visitRules(user *UserInfo, ns string, visit func(source *ruleSource, r *rbacv1.PolicyRule) bool) []error {
	d := a.readDerived()
	defer a.mu.RUnlock()
	var errs []error
	for _, name := range d.clusterBindings {
		b := a.clusterRoleBindings[name]
		subject, ok := appliesTo(user, b.Subjects, "")
		if !ok {
			continue
		}
		rules, err := a.roleRules(d, b.RoleRef, "")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		source := ruleSource{kind: "ClusterRoleBinding", name: b.Name, ref: b.RoleRef, subject: subject}
		for i := range rules {
			if !visit(&source, &rules[i]) {
				return errs
			}
		}
	}
	if ns == "" {
		return errs
	}
	rbs := a.roleBindings[ns]
	for _, name := range d.nsBindings[ns] {
		b := rbs[name]
		subject, ok := appliesTo(user, b.Subjects, ns)
		if !ok {
			continue
		}
		rules, err := a.roleRules(d, b.RoleRef, ns)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		source := ruleSource{kind: "RoleBinding", name: b.Name, namespace: ns, ref: b.RoleRef, subject: subject}
		for i := range rules {
			if !visit(&source, &rules[i]) {
				return errs
			}
		}
	}
	return errs
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// readDerived takes the read lock, computing the derived state first if
// needed, and returns it; the caller releases the read lock.
func (a *rbacAuthorizer) readDerived() *rbacDerived {
	a.mu.RLock()
	if d := a.derived; d != nil {
		return d
	}
	a.mu.RUnlock()
	a.mu.Lock()
	if a.derived == nil {
		d := &rbacDerived{aggregated: aggregateClusterRoles(a.clusterRoles), clusterBindings: sortedKeys(a.clusterRoleBindings),
			nsBindings: make(map[string][]string, len(a.roleBindings))}
		for ns, bs := range a.roleBindings {
			d.nsBindings[ns] = sortedKeys(bs)
		}
		a.derived = d
	}
	a.mu.Unlock()
	// Another change may land in between; the next request recomputes.
	a.mu.RLock()
	if a.derived == nil {
		a.mu.RUnlock()
		return a.readDerived()
	}
	return a.derived
}

// roleRules resolves a roleRef of a binding in ns ("" for a
// ClusterRoleBinding). Callers hold mu for reading; d is current.
func (a *rbacAuthorizer) roleRules(d *rbacDerived, ref rbacv1.RoleRef, ns string) ([]rbacv1.PolicyRule, error) {
	switch ref.Kind {
	case "ClusterRole":
		if rules, ok := d.aggregated[ref.Name]; ok {
			return rules, nil
		}
		cr, ok := a.clusterRoles[ref.Name]
		if !ok {
			return nil, fmt.Errorf("clusterrole.rbac.authorization.k8s.io %q not found", ref.Name)
		}
		return cr.Rules, nil
	case "Role":
		if ns == "" {
			return nil, fmt.Errorf("role %q cannot be referenced by a ClusterRoleBinding", ref.Name)
		}
		r, ok := a.roles[ns+"/"+ref.Name]
		if !ok {
			return nil, fmt.Errorf("role.rbac.authorization.k8s.io %q not found", ref.Name)
		}
		return r.Rules, nil
	}
	return nil, fmt.Errorf("unsupported role reference kind: %q", ref.Kind)
}

// aggregateClusterRoles computes the rules of every aggregated ClusterRole:
// its own rules plus the rules of every ClusterRole matched by one of its
// clusterRoleSelectors, which may be aggregated in turn (admin picks edit,
// which picks view). The union has no duplicate rules; cycles are cut.
// Upstream's aggregation controller writes the same union into the role;
// computing it here means authorization never waits for that controller.
func aggregateClusterRoles(roles map[string]*rbacv1.ClusterRole) map[string][]rbacv1.PolicyRule {
	out := map[string][]rbacv1.PolicyRule{}
	var resolve func(name string, visiting map[string]bool) []rbacv1.PolicyRule
	resolve = func(name string, visiting map[string]bool) []rbacv1.PolicyRule {
		cr := roles[name]
		if cr.AggregationRule == nil {
			return cr.Rules
		}
		if rules, ok := out[name]; ok {
			return rules
		}
		if visiting[name] {
			return nil
		}
		visiting[name] = true
		defer delete(visiting, name)
		var rules []rbacv1.PolicyRule
		add := func(rs []rbacv1.PolicyRule) {
			for _, r := range rs {
				if !containsRule(rules, r) {
					rules = append(rules, r)
				}
			}
		}
		add(cr.Rules)
		for _, sel := range cr.AggregationRule.ClusterRoleSelectors {
			s, err := metav1.LabelSelectorAsSelector(&sel)
			if err != nil || s.Empty() {
				continue
			}
			for _, other := range sortedKeys(roles) {
				if other == name || !s.Matches(labels.Set(roles[other].Labels)) {
					continue
				}
				add(resolve(other, visiting))
			}
		}
		return rules
	}
	for _, name := range sortedKeys(roles) {
		if roles[name].AggregationRule != nil {
			out[name] = resolve(name, map[string]bool{})
		}
	}
	return out
}

func containsRule(rules []rbacv1.PolicyRule, r rbacv1.PolicyRule) bool {
	for i := range rules {
		if equalStrings(rules[i].Verbs, r.Verbs) && equalStrings(rules[i].APIGroups, r.APIGroups) &&
			equalStrings(rules[i].Resources, r.Resources) && equalStrings(rules[i].ResourceNames, r.ResourceNames) &&
			equalStrings(rules[i].NonResourceURLs, r.NonResourceURLs) {
			return true
		}
	}
	return false
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// appliesTo returns the subject among subjects that is user: a User by
// name, a Group the user is in, or a ServiceAccount (whose namespace
// defaults to the binding's, ns).
func appliesTo(user *UserInfo, subjects []rbacv1.Subject, ns string) (rbacv1.Subject, bool) {
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.UserKind:
			if s.Name == user.Name {
				return s, true
			}
		case rbacv1.GroupKind:
			for _, g := range user.Groups {
				if g == s.Name {
					return s, true
				}
			}
		case rbacv1.ServiceAccountKind:
			saNS := ns
			if s.Namespace != "" {
				saNS = s.Namespace
			}
			if saNS != "" && isServiceAccountUser(user.Name, saNS, s.Name) {
				return s, true
			}
		}
	}
	return rbacv1.Subject{}, false
}

// ruleSource is the binding a rule came through.
type ruleSource struct {
	kind, name, namespace string
	ref                   rbacv1.RoleRef
	subject               rbacv1.Subject
}

// String describes the binding as upstream's allow reasons do.
func (s *ruleSource) String() string {
	name := s.name
	if s.namespace != "" {
		name += "/" + s.namespace
	}
	return fmt.Sprintf("%s %q of %s %q to %s", s.kind, name, s.ref.Kind, s.ref.Name, describeSubject(s.subject, s.namespace))
}

// isServiceAccountUser reports whether user is serviceAccountUser(ns,
// name), without building that string.
func isServiceAccountUser(user, ns, name string) bool {
	rest, ok := strings.CutPrefix(user, serviceAccountUserPrefix)
	return ok && len(rest) == len(ns)+1+len(name) && rest[:len(ns)] == ns && rest[len(ns)] == ':' && rest[len(ns)+1:] == name
}

// describeSubject names a subject as upstream's allow reasons do
// (ServiceAccounts as "name/namespace").
func describeSubject(s rbacv1.Subject, bindingNS string) string {
	if s.Kind == rbacv1.ServiceAccountKind {
		ns := s.Namespace
		if ns == "" {
			ns = bindingNS
		}
		return fmt.Sprintf("%s %q", s.Kind, s.Name+"/"+ns)
	}
	return fmt.Sprintf("%s %q", s.Kind, s.Name)
}

// ruleAllows reports whether rule r covers the request a, with upstream's
// matching: "*" matches any verb, group or resource; "*/sub" any resource's
// subresource sub; resourceNames, when set, restrict to those names (so
// never match list or create, which have none); nonResourceURLs match
// exactly or by a prefix ending in "*".
func ruleAllows(a Attributes, r *rbacv1.PolicyRule) bool {
	if !hasOrStar(r.Verbs, a.Verb) {
		return false
	}
	if !a.IsResource {
		return nonResourceURLMatches(r.NonResourceURLs, a.Path)
	}
	if !hasOrStar(r.APIGroups, a.APIGroup) || !resourceMatches(r.Resources, a.Resource, a.Subresource) {
		return false
	}
	if len(r.ResourceNames) == 0 {
		return true
	}
	for _, n := range r.ResourceNames {
		if n == a.Name {
			return true
		}
	}
	return false
}

func hasOrStar(list []string, v string) bool {
	for _, x := range list {
		if x == "*" || x == v {
			return true
		}
	}
	return false
}

func resourceMatches(rules []string, resource, sub string) bool {
	combined := resource
	if sub != "" {
		combined += "/" + sub
	}
	for _, r := range rules {
		switch {
		case r == "*", r == combined:
			return true
		case sub != "" && r == "*/"+sub:
			return true
		}
	}
	return false
}

func nonResourceURLMatches(rules []string, path string) bool {
	for _, u := range rules {
		switch {
		case u == "*", u == path:
			return true
		case strings.HasSuffix(u, "*") && strings.HasPrefix(path, strings.TrimSuffix(u, "*")):
			return true
		}
	}
	return false
}

// Mirror maintenance, called by the watches (rbacwatch.go).

// apply records obj (a ClusterRole, Role, ClusterRoleBinding or
// RoleBinding, never modified afterwards) as current, or as gone when
// deleted.
func (a *rbacAuthorizer) apply(obj runtime.Object, deleted bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.applyLocked(obj, deleted)
}

func (a *rbacAuthorizer) applyLocked(obj runtime.Object, deleted bool) error {
	a.derived = nil
	switch o := obj.(type) {
	case *rbacv1.ClusterRole:
		setOrDelete(a.clusterRoles, o.Name, o, deleted)
	case *rbacv1.Role:
		setOrDelete(a.roles, o.Namespace+"/"+o.Name, o, deleted)
	case *rbacv1.ClusterRoleBinding:
		setOrDelete(a.clusterRoleBindings, o.Name, o, deleted)
	case *rbacv1.RoleBinding:
		ns := a.roleBindings[o.Namespace]
		if ns == nil {
			ns = map[string]*rbacv1.RoleBinding{}
			a.roleBindings[o.Namespace] = ns
		}
		setOrDelete(ns, o.Name, o, deleted)
		if len(ns) == 0 {
			delete(a.roleBindings, o.Namespace)
		}
	default:
		return fmt.Errorf("%w: %T", errUnknownRBACObject, obj)
	}
	return nil
}

// replace swaps the whole mirror of resource ("clusterroles", "roles",
// "clusterrolebindings" or "rolebindings") for objs after a (re)list, in
// one step, so no request sees a half-filled mirror.
func (a *rbacAuthorizer) replace(resource string, objs []runtime.Object) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.derived = nil
	switch resource {
	case "clusterroles":
		a.clusterRoles = map[string]*rbacv1.ClusterRole{}
	case "roles":
		a.roles = map[string]*rbacv1.Role{}
	case "clusterrolebindings":
		a.clusterRoleBindings = map[string]*rbacv1.ClusterRoleBinding{}
	case "rolebindings":
		a.roleBindings = map[string]map[string]*rbacv1.RoleBinding{}
	default:
		return fmt.Errorf("%w: resource %q", errUnknownRBACObject, resource)
	}
	var errs []error
	for _, o := range objs {
		if err := a.applyLocked(o, false); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func setOrDelete[V any](m map[string]V, key string, v V, deleted bool) {
	if deleted {
		delete(m, key)
		return
	}
	m[key] = v
}

// errUnknownRBACObject is returned by the mirror for objects of other types.
var errUnknownRBACObject = errors.New("not an RBAC object")
