package apiserver_test

import (
	"context"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-project/skiff/pkg/apiserver/apiservertest"
)

// clientFor returns a client of s that authenticates with token.
func clientFor(t *testing.T, s *apiservertest.Server, token string) kubernetes.Interface {
	t.Helper()
	cfg := rest.CopyConfig(s.Config)
	cfg.BearerToken = token
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// impersonating returns an admin client acting as user.
func impersonating(t *testing.T, s *apiservertest.Server, user string) kubernetes.Interface {
	t.Helper()
	cfg := rest.CopyConfig(s.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func createSA(t *testing.T, c kubernetes.Interface, ns, name string) *corev1.ServiceAccount {
	t.Helper()
	sa, err := c.CoreV1().ServiceAccounts(ns).Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sa
}

func whoami(c kubernetes.Interface) (authenticationv1.UserInfo, error) {
	r, err := c.AuthenticationV1().SelfSubjectReviews().Create(context.Background(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return authenticationv1.UserInfo{}, err
	}
	return r.Status.UserInfo, nil
}

func TestTokenRequestAPI(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	createSA(t, s.Client, "default", "app")
	tr, err := s.Client.CoreV1().ServiceAccounts("default").CreateToken(ctx, "app", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest: %v", err)
	}
	if tr.Status.Token == "" || tr.Spec.ExpirationSeconds == nil || *tr.Spec.ExpirationSeconds != 3600 || tr.Name != "app" {
		t.Errorf("TokenRequest = %+v", tr)
	}
	_, err = s.Client.CoreV1().ServiceAccounts("default").CreateToken(ctx, "nope", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if !apierrors.IsNotFound(err) || err.Error() != `serviceaccounts "nope" not found` {
		t.Errorf("missing service account: %v, want 404", err)
	}
	short := int64(599)
	_, err = s.Client.CoreV1().ServiceAccounts("default").CreateToken(ctx, "app",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &short}}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes") {
		t.Errorf("599 s token: %v, want 422", err)
	}
	// The subresource takes only POST.
	code, _, _ := rawRequest(t, s.Config, "GET", "/api/v1/namespaces/default/serviceaccounts/app/token", "", nil, "")
	if code != 405 {
		t.Errorf("GET token = %d, want 405", code)
	}
}

func TestServiceAccountIdentityAndRBAC(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	sa := createSA(t, s.Client, "default", "app")
	tr, err := s.Client.CoreV1().ServiceAccounts("default").CreateToken(ctx, "app", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	app := clientFor(t, s, tr.Status.Token)
	who, err := whoami(app)
	if err != nil {
		t.Fatalf("whoami: %v", err)
	}
	if who.Username != "system:serviceaccount:default:app" || who.UID != string(sa.UID) ||
		strings.Join(who.Groups, ",") != "system:serviceaccounts,system:serviceaccounts:default,system:authenticated" {
		t.Errorf("whoami = %+v", who)
	}

	_, err = app.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	want := `pods is forbidden: User "system:serviceaccount:default:app" cannot list resource "pods" in API group "" in the namespace "default"`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Fatalf("list pods as the service account: %v\nwant 403 %s", err, want)
	}
	// Discovery is open to every authenticated user (system:discovery).
	if _, err := app.Discovery().ServerGroups(); err != nil {
		t.Errorf("discovery as the service account: %v", err)
	}

	if _, err := s.Client.RbacV1().RoleBindings("default").Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "app-view"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "app", Namespace: "default"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The authorizer follows the watch cache: allowed within moments.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = app.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("list pods after the RoleBinding: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// view reads but does not write, and only in its namespace.
	if _, err := app.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("create configmap with view: %v, want 403", err)
	}
	if _, err := app.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list pods in kube-system with a default RoleBinding: %v, want 403", err)
	}
}

func TestPodBoundTokenEndsWithThePod(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	createSA(t, s.Client, "default", "app")
	pod, err := s.Client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.PodSpec{ServiceAccountName: "app", Containers: []corev1.Container{{Name: "c", Image: "nginx"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := s.Client.CoreV1().ServiceAccounts("default").CreateToken(ctx, "app", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		BoundObjectRef: &authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: "web", UID: pod.UID}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	app := clientFor(t, s, tr.Status.Token)
	who, err := whoami(app)
	if err != nil {
		t.Fatalf("whoami with the pod's token: %v", err)
	}
	if got := who.Extra["authentication.kubernetes.io/pod-name"]; len(got) != 1 || got[0] != "web" {
		t.Errorf("extra = %v, want the pod name", who.Extra)
	}
	if err := s.Client.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := whoami(app); !apierrors.IsUnauthorized(err) {
		t.Errorf("whoami after the pod was deleted: %v, want 401", err)
	}
}

func TestServiceAccountAdmission(t *testing.T) {
	s := apiservertest.StartWith(t, apiservertest.Options{ServiceAccountAdmission: true})
	ctx := context.Background()
	container := []corev1.Container{{Name: "c", Image: "nginx"}}
	if _, err := s.Client.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err := s.Client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.PodSpec{Containers: container}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Spec.ServiceAccountName != "default" || len(pod.Spec.Volumes) != 1 || !strings.HasPrefix(pod.Spec.Volumes[0].Name, "kube-api-access-") ||
		len(pod.Spec.Volumes[0].Name) != len("kube-api-access-")+5 || pod.Spec.Volumes[0].Projected == nil ||
		len(pod.Spec.Containers[0].VolumeMounts) != 1 || pod.Spec.Containers[0].VolumeMounts[0].MountPath != "/var/run/secrets/kubernetes.io/serviceaccount" ||
		len(pod.Spec.ImagePullSecrets) != 1 || pod.Spec.ImagePullSecrets[0].Name != "regcred" {
		t.Errorf("admitted pod spec: sa %q volumes %+v mounts %+v pull secrets %v", pod.Spec.ServiceAccountName, pod.Spec.Volumes,
			pod.Spec.Containers[0].VolumeMounts, pod.Spec.ImagePullSecrets)
	}

	_, err = s.Client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "lost"},
		Spec: corev1.PodSpec{ServiceAccountName: "ghost", Containers: container}}, metav1.CreateOptions{})
	want := `pods "lost" is forbidden: error looking up service account default/ghost: serviceaccount "ghost" not found`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("pod with a missing service account: %v\nwant %s", err, want)
	}

	no := false
	if _, err := s.Client.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "quiet"},
		AutomountServiceAccountToken: &no}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err = s.Client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "quiet"},
		Spec: corev1.PodSpec{ServiceAccountName: "quiet", Containers: container}}, metav1.CreateOptions{})
	if err != nil || len(pod.Spec.Volumes) != 0 || len(pod.Spec.Containers[0].VolumeMounts) != 0 {
		t.Errorf("pod of an account without automount: %v, volumes %v", err, pod.Spec.Volumes)
	}
}

func TestImpersonationAndAccessReviews(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	createSA(t, s.Client, "default", "app")
	listPods := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: "default", Verb: "list", Resource: "pods"}}}

	// kubectl auth can-i list pods --as=system:serviceaccount:default:app
	as := impersonating(t, s, "system:serviceaccount:default:app")
	r, err := as.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, listPods, metav1.CreateOptions{})
	if err != nil || r.Status.Allowed {
		t.Fatalf("can-i as the service account = %+v, %v; want not allowed", r, err)
	}
	who, err := whoami(as)
	if err != nil || who.Username != "system:serviceaccount:default:app" ||
		strings.Join(who.Groups, ",") != "system:serviceaccounts,system:serviceaccounts:default,system:authenticated" {
		t.Errorf("whoami as the service account = %+v, %v", who, err)
	}
	// The admin may, and says so.
	r, err = s.Client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, listPods, metav1.CreateOptions{})
	if err != nil || !r.Status.Allowed {
		t.Errorf("can-i as admin = %+v, %v", r, err)
	}
	// SubjectAccessReview asks about someone else.
	sar, err := s.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: "system:serviceaccount:default:app", Groups: []string{"system:serviceaccounts"},
		NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: "/apis", Verb: "get"}}}, metav1.CreateOptions{})
	if err != nil || sar.Status.Allowed {
		// Not in system:authenticated here, so not even discovery.
		t.Errorf("SubjectAccessReview = %+v, %v; want denied", sar, err)
	}
	// Impersonation is itself authorized.
	nobodyAs := rest.CopyConfig(s.Config)
	nobodyAs.BearerToken = "nobody"
	nobodyAs.Impersonate = rest.ImpersonationConfig{UserName: "admin"}
	c, err := kubernetes.NewForConfig(nobodyAs)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	want := `users "admin" is forbidden: User "nobody" cannot impersonate resource "users" in API group "" at the cluster scope`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("impersonation by nobody: %v\nwant %s", err, want)
	}
	// Rules review lists what the service account may do.
	rules, err := as.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{
		Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: "default"}}, metav1.CreateOptions{})
	if err != nil || len(rules.Status.ResourceRules) == 0 || len(rules.Status.NonResourceRules) == 0 || rules.Status.Incomplete {
		t.Errorf("SelfSubjectRulesReview = %+v, %v", rules, err)
	}
}

func TestTokenReview(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	createSA(t, s.Client, "default", "app")
	tr, err := s.Client.CoreV1().ServiceAccounts("default").CreateToken(ctx, "app", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"vault"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	review := func(auds ...string) *authenticationv1.TokenReview {
		t.Helper()
		r, err := s.Client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{
			Token: tr.Status.Token, Audiences: auds}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := review("vault"); !r.Status.Authenticated || r.Status.User.Username != "system:serviceaccount:default:app" || strings.Join(r.Status.Audiences, ",") != "vault" {
		t.Errorf("review for vault = %+v", r.Status)
	}
	if r := review(); r.Status.Authenticated || !strings.Contains(r.Status.Error, "token audiences") {
		t.Errorf("review for the API server = %+v", r.Status)
	}
}

func TestRBACEscalationPrevention(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	nobody := clientFor(t, s, "nobody")
	mustAdmin := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	bindRule := rbacv1.PolicyRule{Verbs: []string{"create", "get", "list"}, APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"rolebindings", "roles"}}
	_, err := s.Client.RbacV1().Roles("default").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "binder"},
		Rules: []rbacv1.PolicyRule{bindRule}}, metav1.CreateOptions{})
	mustAdmin(err)
	_, err = s.Client.RbacV1().RoleBindings("default").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "nobody-binder"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "binder"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "nobody"}}}, metav1.CreateOptions{})
	mustAdmin(err)
	bindTo := func(name, kind, role string) error {
		_, err := nobody.RbacV1().RoleBindings("default").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: role},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "nobody"}}}, metav1.CreateOptions{})
		return err
	}
	// Wait for the grant to reach the authorizer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := nobody.RbacV1().RoleBindings("default").List(ctx, metav1.ListOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("binder role never took effect: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	err = bindTo("grab-admin", "ClusterRole", "cluster-admin")
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(),
		`rolebindings.rbac.authorization.k8s.io "grab-admin" is forbidden: user "nobody" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:`) ||
		!strings.Contains(err.Error(), `{APIGroups:["*"], Resources:["*"], Verbs:["*"]}`) {
		t.Errorf("binding cluster-admin without holding it: %v", err)
	}
	_, err = nobody.RbacV1().Roles("default").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "secrets"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}}}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}`) {
		t.Errorf("creating a role with permissions not held: %v", err)
	}
	// What one holds, one may pass on.
	if err := bindTo("again", "Role", "binder"); err != nil {
		t.Errorf("binding a role whose permissions are held: %v", err)
	}
	// "bind" on a role allows binding it without holding it.
	_, err = s.Client.RbacV1().Roles("default").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "may-bind-view"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"bind"}, APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"clusterroles"}, ResourceNames: []string{"view"}}}}, metav1.CreateOptions{})
	mustAdmin(err)
	_, err = s.Client.RbacV1().RoleBindings("default").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "nobody-may-bind-view"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "may-bind-view"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "nobody"}}}, metav1.CreateOptions{})
	mustAdmin(err)
	deadline = time.Now().Add(10 * time.Second)
	for {
		err := bindTo("view", "ClusterRole", "view")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("binding view with the bind verb: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
