package criruntime

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The keyring turns a pod's image pull secrets into the registry
// credentials for one image, matching them the way upstream's credential
// keyring (k8s.io/kubernetes/pkg/credentialprovider) does:
//
//   - a key is a registry host with an optional port and path
//     ("registry.example.com:5000/team"); "https://", "http://" and a
//     trailing "/v1/" or "/v2/" are ignored;
//   - it matches an image whose normalized repository ("docker.io/library/
//     busybox", "127.0.0.1:5000/echo") has the same port, the same number
//     of host labels, each label matching the key's label as a glob
//     ("*.example.com"), and a path the key's path is a prefix of;
//   - more specific keys come first (the keys are sorted in reverse);
//   - for Docker Hub images, a key of "index.docker.io" (the docker CLI's
//     "https://index.docker.io/v1/") applies when nothing else matched.

// defaultRegistryKey is the key docker config files use for Docker Hub.
const defaultRegistryKey = "index.docker.io"

// credential is one registry login taken from a pull secret.
type credential struct {
	username, password string
	// hash identifies the login (not its source) for the records of
	// who may use an image pulled with it; see pullRecords.
	hash string
}

// authConfig is the CRI form of c. ServerAddress stays empty like
// upstream's: containerd 1.6 cannot parse "host:port" there and would
// fail the pull.
func (c credential) authConfig() *runtimeapi.AuthConfig {
	return &runtimeapi.AuthConfig{Username: c.username, Password: c.password}
}

// dockerConfigEntry is one entry of a .dockercfg or of the "auths" of a
// .dockerconfigjson.
type dockerConfigEntry struct {
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	Email    string `json:"email,omitempty"`
	// Auth is base64("username:password"); it wins over Username and
	// Password when set.
	Auth string `json:"auth,omitempty"`
}

// keyring holds the credentials of a pod's pull secrets by key. The zero
// value is an empty keyring.
type keyring struct {
	index []string // keys, sorted in reverse so specific paths come first
	creds map[string][]credential
}

// keyringFromSecrets builds the keyring of secrets, in their order. Only
// kubernetes.io/dockerconfigjson and kubernetes.io/dockercfg Secrets
// count, like upstream; others are ignored. A Secret whose content does
// not parse is an error.
func keyringFromSecrets(secrets []*corev1.Secret) (*keyring, error) {
	k := &keyring{creds: map[string][]credential{}}
	for _, s := range secrets {
		var cfg map[string]dockerConfigEntry
		switch {
		case s.Type == corev1.SecretTypeDockerConfigJson && len(s.Data[corev1.DockerConfigJsonKey]) > 0:
			var doc struct {
				Auths map[string]dockerConfigEntry `json:"auths"`
			}
			if err := json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &doc); err != nil {
				return nil, fmt.Errorf("parsing %s of secret %s/%s: %w", corev1.DockerConfigJsonKey, s.Namespace, s.Name, err)
			}
			cfg = doc.Auths
		case s.Type == corev1.SecretTypeDockercfg && len(s.Data[corev1.DockerConfigKey]) > 0:
			if err := json.Unmarshal(s.Data[corev1.DockerConfigKey], &cfg); err != nil {
				return nil, fmt.Errorf("parsing %s of secret %s/%s: %w", corev1.DockerConfigKey, s.Namespace, s.Name, err)
			}
		default:
			continue
		}
		if err := k.add(cfg); err != nil {
			return nil, fmt.Errorf("secret %s/%s: %w", s.Namespace, s.Name, err)
		}
	}
	return k, nil
}

// add adds the entries of one docker config. Locations that do not parse
// as URLs are skipped, as upstream does.
func (k *keyring) add(cfg map[string]dockerConfigEntry) error {
	// Map order is random; sorted locations keep the order of several
	// credentials under one key stable.
	locs := make([]string, 0, len(cfg))
	for loc := range cfg {
		locs = append(locs, loc)
	}
	sort.Strings(locs)
	for _, loc := range locs {
		e := cfg[loc]
		user, pass := e.Username, e.Password
		if e.Auth != "" {
			var err error
			if user, pass, err = decodeAuth(e.Auth); err != nil {
				return fmt.Errorf("entry %q: %w", loc, err)
			}
		}
		key, ok := keyringKey(loc)
		if !ok {
			continue
		}
		if _, seen := k.creds[key]; !seen {
			k.index = append(k.index, key)
		}
		sum := sha256.Sum256([]byte(user + "\x00" + pass))
		k.creds[key] = append(k.creds[key], credential{username: user, password: pass, hash: hex.EncodeToString(sum[:])})
	}
	sort.Sort(sort.Reverse(sort.StringSlice(k.index)))
	return nil
}

// decodeAuth decodes a docker config "auth" field.
func decodeAuth(field string) (user, pass string, err error) {
	b, err := base64.StdEncoding.DecodeString(field)
	if err != nil {
		return "", "", fmt.Errorf("decoding auth: %w", err)
	}
	user, pass, ok := strings.Cut(string(b), ":")
	if !ok {
		return "", "", errors.New("unable to parse auth field, must be formatted as base64(username:password)")
	}
	return user, pass, nil
}

// keyringKey returns the key of a docker config location: host[:port]
// plus the path, without scheme and without a "/v1/" or "/v2/" prefix.
func keyringKey(loc string) (string, bool) {
	if !strings.HasPrefix(loc, "https://") && !strings.HasPrefix(loc, "http://") {
		loc = "https://" + loc
	}
	u, err := url.Parse(loc)
	if err != nil || u.Host == "" {
		return "", false
	}
	p := u.Path
	if strings.HasPrefix(p, "/v1/") || strings.HasPrefix(p, "/v2/") {
		p = p[3:]
	}
	if p == "" || p == "/" {
		return u.Host, true
	}
	return u.Host + p, true
}

// lookup returns the credentials for the normalized repository repo
// ("docker.io/library/busybox"), most specific key first; none means an
// anonymous pull.
func (k *keyring) lookup(repo string) []credential {
	if k == nil {
		return nil
	}
	var out []credential
	for _, key := range k.index {
		if keyMatches(key, repo) {
			out = append(out, k.creds[key]...)
		}
	}
	if len(out) == 0 && isDockerHub(repo) {
		out = append(out, k.creds[defaultRegistryKey]...)
	}
	return out
}

// keyMatches reports whether the keyring key glob matches repo: same port,
// as many host labels with each matching as a glob, and glob's path a
// prefix of repo's.
func keyMatches(glob, repo string) bool {
	gHost, gPath, _ := strings.Cut(glob, "/")
	rHost, rPath, _ := strings.Cut(repo, "/")
	gLabels, gPort := splitHostPort(gHost)
	rLabels, rPort := splitHostPort(rHost)
	if gPort != rPort || len(gLabels) != len(rLabels) || !strings.HasPrefix("/"+rPath, "/"+gPath) {
		return false
	}
	for i := range gLabels {
		if ok, err := filepath.Match(gLabels[i], rLabels[i]); err != nil || !ok {
			return false
		}
	}
	return true
}

// splitHostPort splits "host[:port]" into the host's labels and the port.
func splitHostPort(hostport string) (labels []string, port string) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, ""
	}
	return strings.Split(host, "."), port
}

// isDockerHub reports whether the normalized repository is on Docker Hub.
func isDockerHub(repo string) bool {
	return strings.HasPrefix(repo, "docker.io/")
}

// normalizeImage splits an image reference into its normalized repository
// (registry host first, "docker.io" and "library/" filled in like
// docker's) and the reference the runtime pulls: the image as written,
// with ":latest" appended when it has neither tag nor digest, like
// upstream's kubelet (which keeps short names short for the CRI).
func normalizeImage(image string) (repo, pullRef string, err error) {
	invalid := func(why string) error {
		return fmt.Errorf("couldn't parse image name %q: invalid reference format%s", image, why)
	}
	name, digest, hasDigest := strings.Cut(image, "@")
	if hasDigest && !strings.Contains(digest, ":") {
		return "", "", invalid("")
	}
	tagged := false
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		if i == len(name)-1 {
			return "", "", invalid("")
		}
		name, tagged = name[:i], true
	}
	if name == "" || strings.ContainsAny(name, " \t\n") || strings.HasPrefix(name, "/") ||
		strings.HasSuffix(name, "/") || strings.Contains(name, "//") {
		return "", "", invalid("")
	}
	// The first component is a registry host when it looks like one
	// (a dot, a port, "localhost" or upper case), as in docker.
	domain, rest, hasSlash := strings.Cut(name, "/")
	if !hasSlash || !strings.ContainsAny(domain, ".:") && domain != "localhost" && strings.ToLower(domain) == domain {
		domain, rest = "docker.io", name
	}
	if strings.ToLower(rest) != rest {
		return "", "", invalid(": repository name must be lowercase")
	}
	if domain == "index.docker.io" {
		domain = "docker.io"
	}
	if domain == "docker.io" && !strings.Contains(rest, "/") {
		rest = "library/" + rest
	}
	pullRef = image
	if !tagged && !hasDigest {
		pullRef = image + ":latest"
	}
	return domain + "/" + rest, pullRef, nil
}
