package apiserver

import (
	"context"
	"crypto/subtle"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// UserInfo is an authenticated identity.
type UserInfo struct {
	Name   string
	UID    string
	Groups []string
	// Extra is additional information from the authenticator (for
	// ServiceAccount tokens: the bound pod and node, the credential ID).
	Extra map[string][]string
}

// Authenticator identifies the user of a request. It returns ok false when
// the request carries no credentials it understands, and an error when it
// carries bad ones.
type Authenticator interface {
	Authenticate(r *http.Request) (user *UserInfo, ok bool, err error)
}

// Attributes is what an Authorizer decides on.
type Attributes struct {
	User        *UserInfo
	Verb        string
	IsResource  bool
	Namespace   string
	APIGroup    string
	Resource    string
	Subresource string
	Name        string
	Path        string
}

// Authorizer allows or denies a request; reason, when not empty, is
// appended to the 403 message. The server's default is RBAC (rbac.go).
type Authorizer interface {
	Authorize(ctx context.Context, a Attributes) (allowed bool, reason string, err error)
}

// AlwaysAllow allows every request, as upstream's AlwaysAllow mode.
type AlwaysAllow struct{}

// Authorize implements Authorizer.
func (AlwaysAllow) Authorize(context.Context, Attributes) (bool, string, error) {
	return true, "", nil
}

// MastersOnly allows members of system:masters everything and nobody else
// anything.
type MastersOnly struct{}

// Authorize implements Authorizer.
func (MastersOnly) Authorize(_ context.Context, a Attributes) (bool, string, error) {
	for _, g := range a.User.Groups {
		if g == "system:masters" {
			return true, "", nil
		}
	}
	return false, "", nil
}

// Union tries each authenticator in order; the first that recognises the
// request's credentials decides.
type Union []Authenticator

// Authenticate implements Authenticator.
func (u Union) Authenticate(r *http.Request) (*UserInfo, bool, error) {
	var errs []error
	for _, a := range u {
		user, ok, err := a.Authenticate(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			return user, true, nil
		}
	}
	return nil, false, errors.Join(errs...)
}

// X509Authenticator maps a verified TLS client certificate to a user: the
// subject's CommonName is the user name and its Organizations the groups,
// as upstream. The TLS layer has already verified the chain.
type X509Authenticator struct{}

// Authenticate implements Authenticator.
func (X509Authenticator) Authenticate(r *http.Request) (*UserInfo, bool, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.PeerCertificates) == 0 {
		return nil, false, nil
	}
	c := r.TLS.PeerCertificates[0]
	if c.Subject.CommonName == "" {
		return nil, false, errors.New("client certificate has no common name")
	}
	return &UserInfo{Name: c.Subject.CommonName, Groups: append([]string{"system:authenticated"}, c.Subject.Organization...)}, true, nil
}

// TokenAuthenticator authenticates static bearer tokens.
type TokenAuthenticator struct {
	tokens map[string]*UserInfo // immutable after construction
}

// NewTokenAuthenticator returns an authenticator for the given token → user map.
func NewTokenAuthenticator(tokens map[string]*UserInfo) *TokenAuthenticator {
	return &TokenAuthenticator{tokens: tokens}
}

// LoadTokenFile reads upstream's static token file format: CSV lines
// "token,user,uid[,\"group1,group2\"]"; '#' lines are comments.
func LoadTokenFile(path string) (*TokenAuthenticator, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open token file: %w", err)
	}
	defer f.Close()
	rd := csv.NewReader(f)
	rd.FieldsPerRecord = -1
	rd.Comment = '#'
	rd.TrimLeadingSpace = true
	records, err := rd.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("parse token file %s: %w", path, err)
	}
	tokens := map[string]*UserInfo{}
	for i, rec := range records {
		if len(rec) < 3 {
			return nil, fmt.Errorf("token file %s, line %d: want token,user,uid[,groups], got %d fields", path, i+1, len(rec))
		}
		u := &UserInfo{Name: rec[1], UID: rec[2], Groups: []string{"system:authenticated"}}
		if len(rec) > 3 && rec[3] != "" {
			for _, g := range strings.Split(rec[3], ",") {
				u.Groups = append(u.Groups, strings.TrimSpace(g))
			}
		}
		if rec[0] == "" {
			return nil, fmt.Errorf("token file %s, line %d: empty token", path, i+1)
		}
		tokens[rec[0]] = u
	}
	return &TokenAuthenticator{tokens: tokens}, nil
}

// Authenticate implements Authenticator.
func (t *TokenAuthenticator) Authenticate(r *http.Request) (*UserInfo, bool, error) {
	h := r.Header.Get("Authorization")
	if !strings.HasPrefix(h, "Bearer ") {
		return nil, false, nil
	}
	token := strings.TrimSpace(strings.TrimPrefix(h, "Bearer "))
	for known, u := range t.tokens {
		if subtle.ConstantTimeCompare([]byte(known), []byte(token)) == 1 {
			return u, true, nil
		}
	}
	return nil, false, errors.New("invalid bearer token")
}

type ctxKey int

const (
	userKey ctxKey = iota
	requestInfoKey
)

func userFrom(ctx context.Context) *UserInfo {
	u, _ := ctx.Value(userKey).(*UserInfo)
	return u
}

func requestInfoFrom(ctx context.Context) *requestInfo {
	ri, _ := ctx.Value(requestInfoKey).(*requestInfo)
	return ri
}

// publicPaths may be read without credentials, like upstream's
// system:public-info-viewer role grants.
func publicPath(p string) bool {
	switch p {
	case "/healthz", "/livez", "/readyz", "/version", "/version/":
		return true
	}
	return false
}

func (s *Server) withAuthentication(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var user *UserInfo
		if s.cfg.Authenticator != nil {
			u, ok, err := s.cfg.Authenticator.Authenticate(r)
			if ok && err == nil {
				user = u
			}
		}
		if user == nil {
			if publicPath(r.URL.Path) {
				user = &UserInfo{Name: "system:anonymous", Groups: []string{"system:unauthenticated"}}
			} else {
				s.writeError(w, r, apierrors.NewUnauthorized("Unauthorized"))
				return
			}
		}
		r.Header.Del("Authorization")
		ctx := r.Context()
		if requestInfoFrom(ctx) == nil {
			ctx = context.WithValue(ctx, requestInfoKey, parseRequestInfo(r))
		}
		user, err := s.impersonate(ctx, r, user)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		ctx = context.WithValue(ctx, userKey, user)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (s *Server) withAuthorization(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user := userFrom(r.Context())
		if user != nil && user.Name == "system:anonymous" && publicPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		info := requestInfoFrom(r.Context())
		attrs := Attributes{User: user, Verb: info.Verb, IsResource: info.IsResource && info.Resource != "", Namespace: info.Namespace,
			APIGroup: info.Group, Resource: info.Resource, Subresource: info.Subresource, Name: info.Name, Path: r.URL.Path}
		allowed, reason, err := s.cfg.Authorizer.Authorize(r.Context(), attrs)
		if err != nil {
			s.writeError(w, r, apierrors.NewInternalError(fmt.Errorf("authorize: %w", err)))
			return
		}
		if !allowed {
			s.writeError(w, r, forbidden(attrs, reason))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// forbidden builds upstream's 403 message, e.g. `pods is forbidden: User
// "bob" cannot list resource "pods" in API group "" in the namespace "default"`.
func forbidden(a Attributes, reason string) error {
	var msg string
	if !a.IsResource {
		msg = fmt.Sprintf("User %q cannot %s path %q", a.User.Name, a.Verb, a.Path)
		return apierrors.NewForbidden(schema.GroupResource{}, "", errors.New(msg+suffix(reason)))
	}
	res := a.Resource
	if a.Subresource != "" {
		res += "/" + a.Subresource
	}
	msg = fmt.Sprintf("User %q cannot %s resource %q in API group %q", a.User.Name, a.Verb, res, a.APIGroup)
	if a.Namespace != "" {
		msg += fmt.Sprintf(" in the namespace %q", a.Namespace)
	} else {
		msg += " at the cluster scope"
	}
	return apierrors.NewForbidden(schema.GroupResource{Group: a.APIGroup, Resource: a.Resource}, a.Name, errors.New(msg+suffix(reason)))
}

func suffix(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + reason
}
