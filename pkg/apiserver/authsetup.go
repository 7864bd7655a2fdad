package apiserver

import (
	"context"
	"fmt"
	"slices"
)

// setUpAuth completes s.cfg's authentication and authorization at New:
// ServiceAccount tokens join the authenticators when keys are configured,
// and a nil Authorizer becomes the one AuthorizationMode names.
func (s *Server) setUpAuth() error {
	for _, p := range s.cfg.DisabledAdmissionPlugins {
		if p != AdmissionServiceAccount {
			return fmt.Errorf("admission plugin %q cannot be disabled; only %q can", p, AdmissionServiceAccount)
		}
	}
	tokens, err := newTokenService(s, s.cfg)
	if err != nil {
		return err
	}
	if tokens != nil {
		s.tokens = tokens
		if s.cfg.Authenticator == nil {
			s.cfg.Authenticator = tokens
		} else {
			s.cfg.Authenticator = Union{s.cfg.Authenticator, tokens}
		}
	}
	if s.cfg.Authorizer != nil {
		return nil
	}
	switch s.cfg.AuthorizationMode {
	case "", AuthorizationModeRBAC:
		s.rbac = newRBACAuthorizer()
		s.cfg.Authorizer = s.rbac
	case AuthorizationModeAlwaysAllow:
		s.cfg.Authorizer = AlwaysAllow{}
	case AuthorizationModeMastersOnly:
		s.cfg.Authorizer = MastersOnly{}
	default:
		return fmt.Errorf("unknown authorization mode %q; use one of %v", s.cfg.AuthorizationMode, AuthorizationModes())
	}
	return nil
}

// startAuth runs at Start, after the namespaces exist: it creates or
// updates the bootstrap RBAC policy and, for RBAC, fills the authorizer's
// mirror of roles and bindings before the server reports ready.
func (s *Server) startAuth(ctx context.Context) error {
	if err := s.bootstrapPolicy(ctx); err != nil {
		return fmt.Errorf("bootstrap RBAC policy: %w", err)
	}
	if s.rbac == nil {
		return nil
	}
	if err := s.startRBACMirror(ctx, s.rbac); err != nil {
		return fmt.Errorf("start RBAC authorizer: %w", err)
	}
	return nil
}

// admissionEnabled reports whether the built-in admission plugin name runs.
func (s *Server) admissionEnabled(name string) bool {
	return !slices.Contains(s.cfg.DisabledAdmissionPlugins, name)
}
