package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// serveHealth answers /healthz, /livez and /readyz (and /<kind>/<check>)
// like upstream: "ok" or, with ?verbose, one [+]/[-] line per check.
func (s *Server) serveHealth(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		checks := []HealthCheck{{Name: "ping", Check: func(context.Context) error { return nil }}, {Name: "log", Check: func(context.Context) error { return nil }}}
		checks = append(checks, HealthCheck{Name: "etcd", Check: s.checkEtcd})
		if kind != "livez" {
			checks = append(checks, HealthCheck{Name: "poststarthook/skiff-bootstrap", Check: func(context.Context) error {
				if !s.isReady() {
					return fmt.Errorf("not finished")
				}
				return nil
			}})
		}
		checks = append(checks, s.cfg.HealthChecks...)
		only := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/"+kind), "/")
		excluded := map[string]bool{}
		for _, e := range r.URL.Query()["exclude"] {
			excluded[e] = true
		}
		var b strings.Builder
		failed := false
		found := only == ""
		for _, c := range checks {
			if only != "" && c.Name != only {
				continue
			}
			found = true
			if excluded[c.Name] {
				fmt.Fprintf(&b, "[+]%s excluded: ok\n", c.Name)
				continue
			}
			if err := c.Check(ctx); err != nil {
				failed = true
				fmt.Fprintf(&b, "[-]%s failed: reason withheld\n", c.Name)
				continue
			}
			fmt.Fprintf(&b, "[+]%s ok\n", c.Name)
		}
		if !found {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if failed {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "%s%s check failed\n", b.String(), kind)
			return
		}
		if _, verbose := r.URL.Query()["verbose"]; verbose {
			fmt.Fprintf(w, "%s%s check passed\n", b.String(), kind)
			return
		}
		fmt.Fprint(w, "ok")
	}
}

func (s *Server) checkEtcd(ctx context.Context) error {
	nsEP, ok := s.lookup(coreNamespaces)
	if !ok {
		return nil
	}
	_, err := nsEP.store.Get(ctx, nsEP.key("", "default"))
	if err != nil && !strings.Contains(err.Error(), "not found") {
		return err
	}
	return nil
}

func (s *Server) serveVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.cfg.Version)
}
