package kubelet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/skiff-project/skiff/pkg/registry/defaults"
	"github.com/skiff-project/skiff/pkg/registry/validation"
)

// Annotations the kubelet puts on static pods and their mirror pods, as
// upstream spells them (k8s.io/kubernetes/pkg/kubelet/types).
const (
	// ConfigSourceAnnotationKey names where a pod came from: FileSource
	// for a manifest file, "api" for the API server, ServerSource for the
	// mirror pods of `skiff server`'s in-process components.
	ConfigSourceAnnotationKey = "kubernetes.io/config.source"
	// ConfigHashAnnotationKey holds a static pod's hash (its UID), which
	// changes whenever its manifest does.
	ConfigHashAnnotationKey = "kubernetes.io/config.hash"
	// ConfigSeenAnnotationKey holds when the kubelet first saw the pod
	// (RFC 3339 with nanoseconds).
	ConfigSeenAnnotationKey = "kubernetes.io/config.seen"
	// ConfigMirrorAnnotationKey marks a mirror pod: the API's read-only
	// view of a pod the API server does not manage; its value is the
	// config hash of the pod it mirrors.
	ConfigMirrorAnnotationKey = corev1.MirrorPodAnnotationKey

	// FileSource is the config source of static pods read from
	// Config.StaticPodPath.
	FileSource = "file"
	// ServerSource is the config source of the mirror pods `skiff server`
	// keeps for its in-process control-plane components. Kubelets never
	// delete or modify them, although no static pod of theirs matches.
	ServerSource = "skiff-server"
)

// DefaultFileCheckFrequency is how often the static pod directory is
// re-read. Upstream re-reads every 20s and also watches with inotify; a
// stat of a few files every two seconds gives the same reaction time
// without a second mechanism.
const DefaultFileCheckFrequency = 2 * time.Second

// IsMirrorPod reports whether pod is a mirror pod: the API's view of a
// static pod, which a kubelet never runs as an ordinary pod.
func IsMirrorPod(pod *corev1.Pod) bool {
	_, ok := pod.Annotations[ConfigMirrorAnnotationKey]
	return ok
}

// fileSource keeps the static pods of one manifest directory, re-reading it
// every interval. Each regular, non-hidden file holds one or more Pod (or
// PodList) documents in YAML or JSON. A file that cannot be read or holds
// an invalid pod is logged (with its name, once per change of the file)
// and contributes no pods; the pods of the other files are unaffected.
type fileSource struct {
	dir      string           // immutable
	nodeName string           // immutable
	clock    clock.WithTicker // immutable
	interval time.Duration    // immutable
	changed  func(key string) // immutable; called for each key whose pod appeared, changed or went away

	// scanMu serialises scans; it guards files and missingLogged.
	scanMu sync.Mutex
	// files caches what each file held when it was last read, so that
	// an unchanged file (same size and modification time) is not parsed
	// again; guarded by scanMu.
	files         map[string]manifestFile
	missingLogged bool // guarded by scanMu

	mu sync.RWMutex
	// pods maps "namespace/name" to the static pod; the pods are shared
	// and must not be modified; guarded by mu.
	pods map[string]*corev1.Pod
}

// manifestFile is what one manifest file held when last read.
type manifestFile struct {
	size    int64
	modTime time.Time
	pods    []*corev1.Pod // defaulted, validated; without the seen annotation
	err     error         // why the file contributes no pods
}

func newFileSource(dir, nodeName string, clk clock.WithTicker, interval time.Duration, changed func(string)) *fileSource {
	return &fileSource{
		dir: dir, nodeName: nodeName, clock: clk, interval: interval, changed: changed,
		files: map[string]manifestFile{},
		pods:  map[string]*corev1.Pod{},
	}
}

// run re-reads the directory every interval until ctx is done.
func (s *fileSource) run(ctx context.Context) {
	t := s.clock.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			s.scan(ctx)
		}
	}
}

// get returns the static pod with key "namespace/name"; false for a nil
// source. The pod is shared and must not be modified.
func (s *fileSource) get(key string) (*corev1.Pod, bool) {
	if s == nil {
		return nil, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.pods[key]
	return p, ok
}

// keys returns the keys of the static pods, sorted; none for a nil source.
func (s *fileSource) keys() []string {
	if s == nil {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Sorted(maps.Keys(s.pods))
}

// scan re-reads the directory and calls changed for every key whose pod
// appeared, went away or got a new UID (its manifest changed). A directory
// that does not exist holds no pods; one that cannot be read keeps the
// pods of the last scan, so that a transient error kills nothing.
func (s *fileSource) scan(ctx context.Context) {
	logger := klog.FromContext(ctx)
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
	entries, err := os.ReadDir(s.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !s.missingLogged {
			logger.Info("static pod path does not exist; watching for it", "path", s.dir)
			s.missingLogged = true
		}
		entries = nil
	case err != nil:
		logger.Error(err, "reading static pod path", "path", s.dir)
		return
	default:
		s.missingLogged = false
	}

	next := map[string]manifestFile{}
	wanted := map[string]*corev1.Pod{}
	from := map[string]string{} // key → file it came from, for duplicate reports
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue // editors' swap files, hidden state
		}
		path := filepath.Join(s.dir, name)
		info, err := os.Stat(path) // follows symlinks, like upstream
		if err != nil {
			// A dangling symlink, say: logged once, not every scan.
			f := manifestFile{err: fmt.Errorf("static pod manifest %s: %w", path, err)}
			if old, ok := s.files[path]; !ok || old.err == nil || old.err.Error() != f.err.Error() {
				logger.Error(f.err, "ignoring unreadable static pod manifest", "file", path)
			}
			next[path] = f
			continue
		}
		if info.IsDir() {
			continue
		}
		f, cached := s.files[path]
		if !cached || f.size != info.Size() || !f.modTime.Equal(info.ModTime()) {
			f = manifestFile{size: info.Size(), modTime: info.ModTime()}
			f.pods, f.err = readManifest(path, s.nodeName)
			if f.err != nil {
				logger.Error(f.err, "ignoring invalid static pod manifest", "file", path)
			}
		}
		next[path] = f
		for _, p := range f.pods {
			key := p.Namespace + "/" + p.Name
			if other, dup := from[key]; dup {
				logger.Error(nil, "ignoring static pod: another manifest defines the same pod", "file", path, "pod", key, "firstFile", other)
				continue
			}
			from[key] = path
			wanted[key] = p
		}
	}
	s.files = next

	now := s.clock.Now()
	var changed []string
	s.mu.Lock()
	for key, p := range wanted {
		if old, ok := s.pods[key]; ok && old.UID == p.UID {
			wanted[key] = old // unchanged: keep its seen time
			continue
		}
		p = p.DeepCopy()
		p.Annotations[ConfigSeenAnnotationKey] = now.Format(time.RFC3339Nano)
		wanted[key] = p
		changed = append(changed, key)
	}
	for key := range s.pods {
		if _, ok := wanted[key]; !ok {
			changed = append(changed, key)
		}
	}
	s.pods = wanted
	s.mu.Unlock()
	slices.Sort(changed)
	for _, key := range changed {
		s.changed(key)
	}
}

// readManifest returns the static pods the manifest file at path defines
// for nodeName, or an error naming the file and the first problem.
func readManifest(path, nodeName string) ([]*corev1.Pod, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("static pod manifest %s: %w", path, err)
	}
	pods, err := decodeManifest(data)
	if err != nil {
		return nil, fmt.Errorf("static pod manifest %s: %w", path, err)
	}
	out := make([]*corev1.Pod, 0, len(pods))
	for _, p := range pods {
		sp, err := staticPod(p, path, nodeName)
		if err != nil {
			return nil, fmt.Errorf("static pod manifest %s: %w", path, err)
		}
		out = append(out, sp)
	}
	return out, nil
}

// decodeManifest decodes every YAML or JSON document of data, each a v1
// Pod or PodList; empty documents are skipped.
func decodeManifest(data []byte) ([]*corev1.Pod, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var pods []*corev1.Pod
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return pods, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		js, err := utilyaml.ToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if t := bytes.TrimSpace(js); len(t) == 0 || string(t) == "null" {
			continue // comments only, or "---" twice
		}
		obj, gvk, err := scheme.Codecs.UniversalDeserializer().Decode(js, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		switch o := obj.(type) {
		case *corev1.Pod:
			pods = append(pods, o)
		case *corev1.PodList:
			for j := range o.Items {
				pods = append(pods, &o.Items[j])
			}
		default:
			return nil, fmt.Errorf("document %d: a static pod manifest holds v1 Pods, not %s", i, gvk)
		}
	}
}

// staticPod turns a pod decoded from the manifest at path into the static
// pod the kubelet runs, as upstream's file source does: named
// "<name>-<nodeName>", in namespace "default" unless it names one, bound to
// nodeName, with a UID that is a hash of the pod, the node and the file (so
// it survives kubelet restarts and changes with the manifest), the config
// annotations, a toleration of every NoExecute taint (so node problems
// never evict it), and the API defaults. It fails when the result is not a
// valid pod.
func staticPod(decoded *corev1.Pod, path, nodeName string) (*corev1.Pod, error) {
	if decoded.Name == "" {
		return nil, errors.New("metadata.name: Required value: a static pod needs a name")
	}
	p := decoded.DeepCopy()
	if p.UID == "" {
		content, err := json.Marshal(decoded)
		if err != nil {
			return nil, fmt.Errorf("hashing pod %s: %w", decoded.Name, err)
		}
		h := sha256.New()
		fmt.Fprintf(h, "host:%s\nfile:%s\n", nodeName, path)
		h.Write(content)
		p.UID = types.UID(hex.EncodeToString(h.Sum(nil)[:16]))
	}
	p.Name = decoded.Name + "-" + strings.ToLower(nodeName)
	if p.Namespace == "" {
		p.Namespace = metav1.NamespaceDefault
	}
	p.Spec.NodeName = nodeName
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[ConfigSourceAnnotationKey] = FileSource
	p.Annotations[ConfigHashAnnotationKey] = string(p.UID)
	tolerateNoExecute(&p.Spec)
	defaults.Pod(p)
	p.Status = corev1.PodStatus{Phase: corev1.PodPending}
	if errs := validation.Validate(p); len(errs) > 0 {
		return nil, fmt.Errorf("invalid pod %s: %w", decoded.Name, errs.ToAggregate())
	}
	return p, nil
}

// tolerateNoExecute adds a toleration of every NoExecute taint unless spec
// has it.
func tolerateNoExecute(spec *corev1.PodSpec) {
	all := corev1.Toleration{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}
	for _, t := range spec.Tolerations {
		if t.MatchToleration(&all) {
			return
		}
	}
	spec.Tolerations = append(spec.Tolerations, all)
}
