package criruntime

import (
	"encoding/base64"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestNormalizeImage(t *testing.T) {
	for _, tc := range []struct {
		image, repo, pull string
		bad               bool
	}{
		{image: "busybox", repo: "docker.io/library/busybox", pull: "busybox:latest"},
		{image: "busybox:1.36", repo: "docker.io/library/busybox", pull: "busybox:1.36"},
		{image: "library/busybox:1.36", repo: "docker.io/library/busybox", pull: "library/busybox:1.36"},
		{image: "index.docker.io/team/app", repo: "docker.io/team/app", pull: "index.docker.io/team/app:latest"},
		{image: "team/app@sha256:abcd", repo: "docker.io/team/app", pull: "team/app@sha256:abcd"},
		{image: "127.0.0.1:5000/echo", repo: "127.0.0.1:5000/echo", pull: "127.0.0.1:5000/echo:latest"},
		{image: "127.0.0.1:5000/a/b:2", repo: "127.0.0.1:5000/a/b", pull: "127.0.0.1:5000/a/b:2"},
		{image: "localhost/app:1", repo: "localhost/app", pull: "localhost/app:1"},
		{image: "registry.k8s.io/pause:3.10", repo: "registry.k8s.io/pause", pull: "registry.k8s.io/pause:3.10"},
		{image: "Busybox", bad: true},
		{image: "busybox:", bad: true},
		{image: "", bad: true},
		{image: "a//b", bad: true},
		{image: "team/app@abcd", bad: true},
	} {
		repo, pull, err := normalizeImage(tc.image)
		if tc.bad {
			if err == nil {
				t.Errorf("normalizeImage(%q) = %q, %q; want an error", tc.image, repo, pull)
			}
			continue
		}
		if err != nil || repo != tc.repo || pull != tc.pull {
			t.Errorf("normalizeImage(%q) = %q, %q, %v; want %q, %q", tc.image, repo, pull, err, tc.repo, tc.pull)
		}
	}
}

func dockerConfigJSONSecret(name, json string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(json)},
	}
}

func TestKeyringLookup(t *testing.T) {
	auth := func(user, pass string) string { return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass)) }
	secrets := []*corev1.Secret{
		dockerConfigJSONSecret("a", `{"auths": {
			"127.0.0.1:5000": {"username": "local", "password": "p1"},
			"https://registry.example.com/v2/": {"auth": "`+auth("example", "p2")+`"},
			"registry.example.com/team": {"username": "team", "password": "p3"},
			"*.wild.io": {"username": "wild", "password": "p4"},
			"https://index.docker.io/v1/": {"username": "hub", "password": "p5"}
		}}`),
		// A second secret for the same registry: both are tried, in
		// secret order.
		dockerConfigJSONSecret("b", `{"auths": {"127.0.0.1:5000": {"username": "local2", "password": "p6"}}}`),
		// The older .dockercfg format has no "auths" wrapper.
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c"},
			Type:       corev1.SecretTypeDockercfg,
			Data:       map[string][]byte{corev1.DockerConfigKey: []byte(`{"quay.io": {"username": "quay", "password": "p7"}}`)},
		},
		// Opaque secrets never count.
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d"},
			Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths": {"quay.io": {"username": "opaque"}}}`)},
		},
	}
	ring, err := keyringFromSecrets(secrets)
	if err != nil {
		t.Fatal(err)
	}
	users := func(repo string) []string {
		var out []string
		for _, c := range ring.lookup(repo) {
			out = append(out, c.username+":"+c.password)
		}
		return out
	}
	for _, tc := range []struct {
		repo string
		want []string
	}{
		{"127.0.0.1:5000/echo", []string{"local:p1", "local2:p6"}},
		{"127.0.0.1:5001/echo", nil}, // another port
		{"127.0.0.1/echo", nil},      // no port
		{"registry.example.com/app", []string{"example:p2"}},
		// The more specific path first, then the host.
		{"registry.example.com/team/app", []string{"team:p3", "example:p2"}},
		{"registry.example.com/teamster/app", []string{"team:p3", "example:p2"}}, // a plain prefix, as upstream
		{"sub.registry.example.com/app", nil},                                    // label count differs
		{"a.wild.io/app", []string{"wild:p4"}},
		{"a.b.wild.io/app", nil},
		{"docker.io/library/busybox", []string{"hub:p5"}},
		{"quay.io/org/app", []string{"quay:p7"}},
		{"ghcr.io/org/app", nil},
	} {
		if diff := cmp.Diff(tc.want, users(tc.repo)); diff != "" {
			t.Errorf("lookup(%q) (-want +got):\n%s", tc.repo, diff)
		}
	}
	// Same login, same hash, whichever secret it came from; different
	// logins differ.
	if a, b := ring.lookup("127.0.0.1:5000/echo"), ring.lookup("quay.io/x"); a[0].hash == a[1].hash || a[0].hash == b[0].hash {
		t.Errorf("credential hashes collide: %v", []string{a[0].hash, a[1].hash, b[0].hash})
	}
}

func TestKeyringErrors(t *testing.T) {
	for _, s := range []*corev1.Secret{
		dockerConfigJSONSecret("bad-json", `{"auths": `),
		dockerConfigJSONSecret("bad-auth", `{"auths": {"quay.io": {"auth": "bm9jb2xvbg=="}}}`), // "nocolon"
		dockerConfigJSONSecret("bad-base64", `{"auths": {"quay.io": {"auth": "%%%"}}}`),
	} {
		if _, err := keyringFromSecrets([]*corev1.Secret{s}); err == nil {
			t.Errorf("secret %s: no error", s.Name)
		}
	}
	// No secrets, or an empty keyring, means an anonymous pull.
	ring, err := keyringFromSecrets(nil)
	if err != nil || len(ring.lookup("docker.io/library/busybox")) != 0 {
		t.Errorf("empty keyring: %v, %v", ring, err)
	}
	var none *keyring
	if got := none.lookup("docker.io/library/busybox"); got != nil {
		t.Errorf("nil keyring lookup = %v", got)
	}
}

func TestAggregateError(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"a"}, "a"},
		{[]string{"a", "a"}, "a"},
		{[]string{"b", "a", "b"}, "[b, a]"},
	} {
		if got := aggregateError(tc.in).Error(); got != tc.want {
			t.Errorf("aggregateError(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
