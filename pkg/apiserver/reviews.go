package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"sort"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The create-only "review" resources of authentication.k8s.io/v1 and
// authorization.k8s.io/v1: nothing is stored, the answer is computed from
// the request and returned with 201, as upstream.

// serveReview serves the review resources and reports whether info named
// one of them.
func (s *Server) serveReview(w http.ResponseWriter, r *http.Request, info *requestInfo) bool {
	if info.Version != "v1" || info.Subresource != "" || info.Name != "" {
		return false
	}
	var fn func(ctx context.Context, user *UserInfo, r *http.Request, info *requestInfo) (runtime.Object, error)
	switch {
	case info.Group == "authorization.k8s.io" && info.Resource == "selfsubjectaccessreviews" && info.Namespace == "":
		fn = s.selfSubjectAccessReview
	case info.Group == "authorization.k8s.io" && info.Resource == "subjectaccessreviews" && info.Namespace == "":
		fn = s.subjectAccessReview
	case info.Group == "authorization.k8s.io" && info.Resource == "localsubjectaccessreviews" && info.Namespace != "":
		fn = s.localSubjectAccessReview
	case info.Group == "authorization.k8s.io" && info.Resource == "selfsubjectrulesreviews" && info.Namespace == "":
		fn = s.selfSubjectRulesReview
	case info.Group == "authentication.k8s.io" && info.Resource == "selfsubjectreviews" && info.Namespace == "":
		fn = s.selfSubjectReview
	case info.Group == "authentication.k8s.io" && info.Resource == "tokenreviews" && info.Namespace == "":
		fn = s.tokenReview
	default:
		return false
	}
	if info.Verb != "create" {
		s.writeError(w, r, apierrors.NewMethodNotSupported(schema.GroupResource{Group: info.Group, Resource: info.Resource}, info.Verb))
		return true
	}
	ctx, cancel := withTimeout(r.Context(), r)
	defer cancel()
	out, err := fn(ctx, userFrom(r.Context()), r, info)
	if err != nil {
		s.writeError(w, r, err)
		return true
	}
	mt, err := s.negotiate(r, nil)
	if err != nil {
		s.writeError(w, r, err)
		return true
	}
	s.writeObject(w, r, http.StatusCreated, mt, out)
	return true
}

// decide runs the authorizer for a review's attributes.
func (s *Server) decide(ctx context.Context, user *UserInfo, ra *authorizationv1.ResourceAttributes, nra *authorizationv1.NonResourceAttributes) authorizationv1.SubjectAccessReviewStatus {
	a := Attributes{User: user}
	if ra != nil {
		a.Verb, a.IsResource, a.Namespace, a.APIGroup = ra.Verb, true, ra.Namespace, ra.Group
		a.Resource, a.Subresource, a.Name = ra.Resource, ra.Subresource, ra.Name
	} else {
		a.Verb, a.Path = nra.Verb, nra.Path
	}
	if rbac, ok := s.cfg.Authorizer.(*rbacAuthorizer); ok {
		allowed, reason := rbac.explain(a)
		return authorizationv1.SubjectAccessReviewStatus{Allowed: allowed, Reason: reason}
	}
	allowed, reason, err := s.cfg.Authorizer.Authorize(ctx, a)
	if err != nil {
		return authorizationv1.SubjectAccessReviewStatus{EvaluationError: err.Error()}
	}
	return authorizationv1.SubjectAccessReviewStatus{Allowed: allowed, Reason: reason}
}

// validateAttributes is upstream's check that a review asks exactly one
// question.
func validateAttributes(ra *authorizationv1.ResourceAttributes, nra *authorizationv1.NonResourceAttributes) field.ErrorList {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	if ra != nil && nra != nil {
		errs = append(errs, field.Invalid(spec.Child("nonResourceAttributes"), nra, "cannot be specified in combination with resourceAttributes"))
	}
	if ra == nil && nra == nil {
		errs = append(errs, field.Invalid(spec.Child("resourceAttributes"), nra, "exactly one of nonResourceAttributes or resourceAttributes must be specified"))
	}
	return errs
}

var authzGV = authorizationv1.SchemeGroupVersion

func (s *Server) selfSubjectAccessReview(ctx context.Context, user *UserInfo, r *http.Request, _ *requestInfo) (runtime.Object, error) {
	gvk := authzGV.WithKind("SelfSubjectAccessReview")
	review := &authorizationv1.SelfSubjectAccessReview{}
	if err := s.decodeRequestBody(r, gvk, review); err != nil {
		return nil, err
	}
	ra, nra := review.Spec.ResourceAttributes, review.Spec.NonResourceAttributes
	if errs := validateAttributes(ra, nra); len(errs) > 0 {
		return nil, apierrors.NewInvalid(gvk.GroupKind(), "", errs)
	}
	review.Status = s.decide(ctx, user, ra, nra)
	return review, nil
}

func (s *Server) subjectAccessReview(ctx context.Context, _ *UserInfo, r *http.Request, _ *requestInfo) (runtime.Object, error) {
	gvk := authzGV.WithKind("SubjectAccessReview")
	review := &authorizationv1.SubjectAccessReview{}
	if err := s.decodeRequestBody(r, gvk, review); err != nil {
		return nil, err
	}
	spec := review.Spec
	errs := validateAttributes(spec.ResourceAttributes, spec.NonResourceAttributes)
	if spec.User == "" && len(spec.Groups) == 0 {
		errs = append(errs, field.Invalid(field.NewPath("spec", "user"), spec.User, "at least one of user or group must be specified"))
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(gvk.GroupKind(), "", errs)
	}
	review.Status = s.decide(ctx, reviewedUser(spec.User, spec.UID, spec.Groups, spec.Extra), spec.ResourceAttributes, spec.NonResourceAttributes)
	return review, nil
}

func (s *Server) localSubjectAccessReview(ctx context.Context, _ *UserInfo, r *http.Request, info *requestInfo) (runtime.Object, error) {
	gvk := authzGV.WithKind("LocalSubjectAccessReview")
	review := &authorizationv1.LocalSubjectAccessReview{}
	if err := s.decodeRequestBody(r, gvk, review); err != nil {
		return nil, err
	}
	spec := review.Spec
	errs := validateAttributes(spec.ResourceAttributes, spec.NonResourceAttributes)
	if spec.User == "" && len(spec.Groups) == 0 {
		errs = append(errs, field.Invalid(field.NewPath("spec", "user"), spec.User, "at least one of user or group must be specified"))
	}
	if spec.NonResourceAttributes != nil {
		errs = append(errs, field.Invalid(field.NewPath("spec", "nonResourceAttributes"), spec.NonResourceAttributes, "disallowed on this kind of request"))
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(gvk.GroupKind(), "", errs)
	}
	if review.Namespace == "" {
		review.Namespace = info.Namespace
	}
	if ra := spec.ResourceAttributes; ra != nil && ra.Namespace == "" {
		ra.Namespace = info.Namespace
	}
	if review.Namespace != info.Namespace || spec.ResourceAttributes.Namespace != info.Namespace {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("spec.resourceAttributes.namespace must match namespace: %v", info.Namespace))
	}
	review.Status = s.decide(ctx, reviewedUser(spec.User, spec.UID, spec.Groups, spec.Extra), spec.ResourceAttributes, nil)
	return review, nil
}

func reviewedUser(name, uid string, groups []string, extra map[string]authorizationv1.ExtraValue) *UserInfo {
	u := &UserInfo{Name: name, UID: uid, Groups: groups}
	for k, v := range extra {
		if u.Extra == nil {
			u.Extra = map[string][]string{}
		}
		u.Extra[k] = v
	}
	return u
}

// selfSubjectRulesReview lists what the user may do in spec.namespace, as
// far as the RBAC authorizer can enumerate it; with another authorizer
// the answer is empty and marked incomplete.
func (s *Server) selfSubjectRulesReview(_ context.Context, user *UserInfo, r *http.Request, _ *requestInfo) (runtime.Object, error) {
	gvk := authzGV.WithKind("SelfSubjectRulesReview")
	review := &authorizationv1.SelfSubjectRulesReview{}
	if err := s.decodeRequestBody(r, gvk, review); err != nil {
		return nil, err
	}
	if review.Spec.Namespace == "" {
		return nil, apierrors.NewInvalid(gvk.GroupKind(), "", field.ErrorList{field.Required(field.NewPath("spec", "namespace"), "")})
	}
	status := authorizationv1.SubjectRulesReviewStatus{ResourceRules: []authorizationv1.ResourceRule{}, NonResourceRules: []authorizationv1.NonResourceRule{}}
	var rules []rbacv1.PolicyRule
	var errs []error
	switch {
	case contains(user.Groups, mastersGroup):
		rules = []rbacv1.PolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}, {Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}}
	case s.rbac != nil:
		rules, errs = s.rbac.rulesFor(user, review.Spec.Namespace)
	default:
		status.Incomplete = true
	}
	for _, rule := range rules {
		if len(rule.NonResourceURLs) > 0 {
			status.NonResourceRules = append(status.NonResourceRules, authorizationv1.NonResourceRule{Verbs: rule.Verbs, NonResourceURLs: rule.NonResourceURLs})
			continue
		}
		status.ResourceRules = append(status.ResourceRules, authorizationv1.ResourceRule{Verbs: rule.Verbs, APIGroups: rule.APIGroups,
			Resources: rule.Resources, ResourceNames: rule.ResourceNames})
	}
	if len(errs) > 0 {
		status.Incomplete = true
		status.EvaluationError = joinErrors(errs)
	}
	review.Status = status
	return review, nil
}

// selfSubjectReview returns who the caller is (kubectl auth whoami).
func (s *Server) selfSubjectReview(_ context.Context, user *UserInfo, r *http.Request, _ *requestInfo) (runtime.Object, error) {
	gvk := authenticationv1.SchemeGroupVersion.WithKind("SelfSubjectReview")
	review := &authenticationv1.SelfSubjectReview{}
	if err := s.decodeRequestBody(r, gvk, review); err != nil {
		return nil, err
	}
	review.CreationTimestamp = metav1.Now()
	review.Status.UserInfo = authenticationUserInfo(user)
	return review, nil
}

func authenticationUserInfo(u *UserInfo) authenticationv1.UserInfo {
	out := authenticationv1.UserInfo{Username: u.Name, UID: u.UID, Groups: u.Groups}
	keys := make([]string, 0, len(u.Extra))
	for k := range u.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if out.Extra == nil {
			out.Extra = map[string]authenticationv1.ExtraValue{}
		}
		out.Extra[k] = u.Extra[k]
	}
	return out
}

// tokenReview authenticates spec.token for spec.audiences, as the API
// server's own bearer-token authenticators would.
func (s *Server) tokenReview(ctx context.Context, _ *UserInfo, r *http.Request, _ *requestInfo) (runtime.Object, error) {
	gvk := authenticationv1.SchemeGroupVersion.WithKind("TokenReview")
	review := &authenticationv1.TokenReview{}
	if err := s.decodeRequestBody(r, gvk, review); err != nil {
		return nil, err
	}
	if review.Spec.Token == "" {
		return nil, apierrors.NewBadRequest("token is required for TokenReview in authentication")
	}
	review.Status = authenticationv1.TokenReviewStatus{}
	var user *UserInfo
	var auds []string
	var authErr error
	if s.tokens != nil {
		u, a, ok, err := s.tokens.authenticateToken(ctx, review.Spec.Token, review.Spec.Audiences)
		if ok {
			user, auds = u, a
		}
		authErr = err
	}
	if user == nil && authErr == nil && s.cfg.Authenticator != nil {
		// Static tokens and other bearer authenticators: ask the chain
		// with a synthetic request (they have no audiences).
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
		if err == nil {
			req.Header.Set("Authorization", "Bearer "+review.Spec.Token)
			u, ok, err := s.cfg.Authenticator.Authenticate(req)
			if ok && err == nil && len(review.Spec.Audiences) == 0 {
				user = u
			}
		}
	}
	switch {
	case user != nil:
		review.Status.Authenticated = true
		review.Status.User = authenticationUserInfo(user)
		review.Status.Audiences = auds
	case authErr != nil:
		review.Status.Error = authErr.Error()
	}
	return review, nil
}
