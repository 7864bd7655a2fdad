package apiserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/storage"
)

// DefaultMetricsResolution is how often the API server scrapes every
// kubelet's /metrics/resource for metrics.k8s.io, metrics-server's
// default --metric-resolution.
const DefaultMetricsResolution = 15 * time.Second

const (
	// metricsScrapeConcurrency bounds the kubelets scraped at once.
	metricsScrapeConcurrency = 32
	// metricsMaxBackoff bounds the wait before a node whose scrapes keep
	// failing (a dead or simulated kubelet) is tried again.
	metricsMaxBackoff = 5 * time.Minute
	// metricsMaxBody bounds one kubelet's answer.
	metricsMaxBody = 16 << 20
	// metricsScrapeTimeout bounds one scrape (less when the resolution
	// is shorter).
	metricsScrapeTimeout = 10 * time.Second
)

// resourceMetrics is the source of metrics.k8s.io: the last two samples
// of every node and container, scraped from the kubelets' resource
// metrics by a loop the Server owns (runResourceMetrics).
//
// Scheduling: every node is scraped once per resolution. A node seen for
// the first time, or whose last scrape brought a container (or the node
// itself) without an earlier sample, is scraped again after followUp, so
// usage of new nodes and pods is known seconds after they appear rather
// than a resolution later. A node whose scrape fails loses its metrics
// and is retried after a resolution, doubling up to metricsMaxBackoff.
type resourceMetrics struct {
	resolution time.Duration // immutable; positive
	followUp   time.Duration // immutable; positive, at most resolution

	mu sync.RWMutex
	// nodes holds each node's state by node name; a stored state is
	// never modified, only replaced. Guarded by mu.
	nodes map[string]*nodeMetricsState

	// schedule is when each node is scraped next; touched only by the
	// scrape loop (round).
	schedule map[string]*scrapeSchedule
}

type scrapeSchedule struct {
	next     time.Time
	failures int
}

// newResourceMetrics returns the store for a resolution: the default when
// zero, nil (metrics.k8s.io not served) when negative.
func newResourceMetrics(resolution time.Duration) *resourceMetrics {
	if resolution < 0 {
		return nil
	}
	if resolution == 0 {
		resolution = DefaultMetricsResolution
	}
	return &resourceMetrics{
		resolution: resolution,
		followUp:   min(resolution, max(time.Second, resolution/5)),
		nodes:      map[string]*nodeMetricsState{},
		schedule:   map[string]*scrapeSchedule{},
	}
}

// node returns the stored state of a node, nil when there is none.
func (m *resourceMetrics) node(name string) *nodeMetricsState {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.nodes[name]
}

// scrapeTarget is a node and its kubelet's host:port.
type scrapeTarget struct {
	node, hostPort string
}

// scrapeFunc fetches and decodes one node's resource metrics.
type scrapeFunc func(ctx context.Context, t scrapeTarget) (metricsBatch, error)

// round is one pass of the scrape loop at now: it forgets nodes no longer
// in targets, scrapes the nodes that are due (at most
// metricsScrapeConcurrency at once), stores what they returned and
// reschedules them. It returns when the next pass is due: the earliest
// scheduled scrape, and no later than followUp from now so new nodes are
// noticed promptly.
func (m *resourceMetrics) round(ctx context.Context, now time.Time, targets []scrapeTarget, scrape scrapeFunc) time.Time {
	listed := make(map[string]bool, len(targets))
	var due []scrapeTarget
	for _, t := range targets {
		listed[t.node] = true
		if sc, ok := m.schedule[t.node]; !ok || !sc.next.After(now) {
			due = append(due, t)
		}
	}
	m.mu.Lock()
	for name := range m.schedule {
		if !listed[name] {
			delete(m.schedule, name)
			delete(m.nodes, name)
		}
	}
	m.mu.Unlock()

	type result struct {
		batch metricsBatch
		err   error
	}
	results := make([]result, len(due))
	sem := make(chan struct{}, metricsScrapeConcurrency)
	var wg sync.WaitGroup
	for i, t := range due {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			b, err := scrape(ctx, t)
			results[i] = result{b, err}
		})
	}
	wg.Wait()

	m.mu.Lock()
	for i, t := range due {
		sc := m.schedule[t.node]
		if sc == nil {
			sc = &scrapeSchedule{}
			m.schedule[t.node] = sc
		}
		if err := results[i].err; err != nil {
			if ctx.Err() != nil {
				continue // shutting down
			}
			delete(m.nodes, t.node)
			sc.failures++
			backoff := m.resolution << min(sc.failures-1, 16)
			sc.next = now.Add(min(backoff, metricsMaxBackoff))
			klog.V(2).InfoS("scraping kubelet resource metrics failed", "node", t.node, "failures", sc.failures, "err", err)
			continue
		}
		state, settled := m.nodes[t.node].next(results[i].batch)
		m.nodes[t.node] = state
		sc.failures = 0
		if settled {
			sc.next = now.Add(m.resolution)
		} else {
			sc.next = now.Add(m.followUp)
		}
	}
	next := now.Add(m.followUp)
	for _, sc := range m.schedule {
		if sc.next.Before(next) {
			next = sc.next
		}
	}
	m.mu.Unlock()
	return next
}

// runResourceMetrics scrapes the kubelets until ctx is done; Start runs
// it. Without a kubelet client nothing is scraped.
func (s *Server) runResourceMetrics(ctx context.Context) {
	m := s.resourceMetrics
	if m == nil {
		return
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := time.Now()
		next := now.Add(m.followUp)
		if targets, err := s.scrapeTargets(ctx); err != nil {
			if ctx.Err() == nil {
				klog.ErrorS(err, "listing nodes for resource metrics")
			}
		} else {
			next = m.round(ctx, now, targets, s.scrapeKubelet)
		}
		timer.Reset(max(time.Until(next), 10*time.Millisecond))
	}
}

// scrapeTargets lists the nodes (from the watch cache) with their
// kubelets' addresses; none while no kubelet client is configured.
func (s *Server) scrapeTargets(ctx context.Context) ([]scrapeTarget, error) {
	if s.kubeletClient() == nil {
		return nil, nil
	}
	ep, ok := s.lookup(schema.GroupVersionResource{Version: "v1", Resource: "nodes"})
	if !ok {
		return nil, errors.New("nodes are not served")
	}
	res, err := ep.store.List(ctx, ep.listPrefix(""), storage.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	targets := make([]scrapeTarget, 0, len(res.Items))
	for _, obj := range res.Items {
		node, ok := obj.(*corev1.Node)
		if !ok {
			continue
		}
		if hp := kubeletHostPort(node); hp != "" {
			targets = append(targets, scrapeTarget{node: node.Name, hostPort: hp})
		}
	}
	return targets, nil
}

// kubeletHostPort is where the node's kubelet listens, as the pod
// subresources reach it; "" when the node has no address.
func kubeletHostPort(node *corev1.Node) string {
	addr := nodeAddress(node)
	if addr == "" {
		return ""
	}
	port := int(node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	if port <= 0 {
		port = defaultKubeletPort
	}
	return net.JoinHostPort(addr, strconv.Itoa(port))
}

// scrapeKubelet fetches https://<kubelet>/metrics/resource with the
// kubelet client the pod subresources use, and decodes it.
func (s *Server) scrapeKubelet(ctx context.Context, t scrapeTarget) (metricsBatch, error) {
	kc := s.kubeletClient()
	if kc == nil {
		return metricsBatch{}, errors.New("no kubelet client configured")
	}
	timeout := metricsScrapeTimeout
	if s.resourceMetrics != nil {
		timeout = min(timeout, s.resourceMetrics.resolution)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+t.hostPort+"/metrics/resource", nil)
	if err != nil {
		return metricsBatch{}, fmt.Errorf("node %s: %w", t.node, err)
	}
	resp, err := kc.transport.RoundTrip(req)
	if err != nil {
		return metricsBatch{}, fmt.Errorf("node %s: %w", t.node, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, metricsMaxBody+1))
	if err != nil {
		return metricsBatch{}, fmt.Errorf("node %s: reading resource metrics: %w", t.node, err)
	}
	if resp.StatusCode != http.StatusOK {
		return metricsBatch{}, fmt.Errorf("node %s: kubelet answered %s: %s", t.node, resp.Status, bytes.TrimSpace(body[:min(len(body), 512)]))
	}
	if len(body) > metricsMaxBody {
		return metricsBatch{}, fmt.Errorf("node %s: resource metrics larger than %d bytes", t.node, metricsMaxBody)
	}
	b, err := decodeResourceMetrics(body, start)
	if err != nil {
		return metricsBatch{}, fmt.Errorf("node %s: %w", t.node, err)
	}
	return b, nil
}

// Resource metric names (the kubelet's /metrics/resource).
const (
	metricNodeCPU            = "node_cpu_usage_seconds_total"
	metricNodeMemory         = "node_memory_working_set_bytes"
	metricContainerCPU       = "container_cpu_usage_seconds_total"
	metricContainerMemory    = "container_memory_working_set_bytes"
	metricContainerStartTime = "container_start_time_seconds"
	metricScrapeError        = "resource_scrape_error"
)

// decodeResourceMetrics reads a kubelet's resource metrics (Prometheus
// text format). Samples without a timestamp are taken at defaultTime. As
// metrics-server does, the node counts only with both CPU and memory,
// and a pod only when every one of its containers has both; other
// metrics are ignored. resource_scrape_error 1 (the kubelet could not
// read its stats) is an error.
func decodeResourceMetrics(b []byte, defaultTime time.Time) (metricsBatch, error) {
	batch := metricsBatch{containers: map[containerKey]metricPoint{}}
	type partial struct {
		p              metricPoint
		hasCPU, hasMem bool
	}
	parts := map[containerKey]*partial{}
	var nodeCPU, nodeMem bool
	for i, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		smp, err := parseSample(string(line))
		if err != nil {
			return metricsBatch{}, fmt.Errorf("resource metrics line %d: %w", i+1, err)
		}
		at := defaultTime
		if smp.hasTimestamp {
			at = time.UnixMilli(smp.timestamp)
		}
		switch smp.name {
		case metricScrapeError:
			if smp.value != 0 {
				return metricsBatch{}, errors.New("the kubelet reported resource_scrape_error")
			}
			continue
		case metricNodeCPU, metricNodeMemory, metricContainerCPU, metricContainerMemory, metricContainerStartTime:
		default:
			continue
		}
		if math.IsNaN(smp.value) || math.IsInf(smp.value, 0) || smp.value < 0 {
			return metricsBatch{}, fmt.Errorf("resource metrics line %d: invalid value %v", i+1, smp.value)
		}
		switch smp.name {
		case metricNodeCPU:
			batch.node.cpu, batch.node.at, nodeCPU = uint64(math.Round(smp.value*1e9)), at, true
			continue
		case metricNodeMemory:
			batch.node.memory, nodeMem = uint64(smp.value), true
			continue
		}
		k := containerKey{namespace: smp.label("namespace"), pod: smp.label("pod"), container: smp.label("container")}
		if k.namespace == "" || k.pod == "" || k.container == "" {
			continue
		}
		p := parts[k]
		if p == nil {
			// Label values are substrings of b: the store outlives it,
			// so its keys get their own copies.
			k = containerKey{strings.Clone(k.namespace), strings.Clone(k.pod), strings.Clone(k.container)}
			p = &partial{}
			parts[k] = p
		}
		switch smp.name {
		case metricContainerCPU:
			p.p.cpu, p.p.at, p.hasCPU = uint64(math.Round(smp.value*1e9)), at, true
		case metricContainerMemory:
			p.p.memory, p.hasMem = uint64(smp.value), true
		case metricContainerStartTime:
			p.p.start = time.Unix(0, int64(math.Round(smp.value*1e9)))
		}
	}
	batch.hasNode = nodeCPU && nodeMem
	incomplete := map[podKey]bool{}
	for k, p := range parts {
		if !p.hasCPU || !p.hasMem {
			incomplete[podKey{k.namespace, k.pod}] = true
		}
	}
	for k, p := range parts {
		if !incomplete[podKey{k.namespace, k.pod}] {
			batch.containers[k] = p.p
		}
	}
	return batch, nil
}

// promSample is one parsed line of the Prometheus text format.
type promSample struct {
	name         string
	labels       [][2]string
	value        float64
	timestamp    int64 // milliseconds since the epoch
	hasTimestamp bool
}

func (s promSample) label(name string) string {
	for _, l := range s.labels {
		if l[0] == name {
			return l[1]
		}
	}
	return ""
}

// parseSample parses `name{l="v",...} value [timestamp]`.
func parseSample(line string) (promSample, error) {
	var s promSample
	i := 0
	for i < len(line) && line[i] != '{' && line[i] != ' ' && line[i] != '\t' {
		i++
	}
	s.name = line[:i]
	if s.name == "" {
		return s, errors.New("no metric name")
	}
	if i < len(line) && line[i] == '{' {
		i++
		for {
			for i < len(line) && (line[i] == ' ' || line[i] == ',') {
				i++
			}
			if i < len(line) && line[i] == '}' {
				i++
				break
			}
			start := i
			for i < len(line) && line[i] != '=' {
				i++
			}
			if i+1 >= len(line) || line[i+1] != '"' {
				return s, fmt.Errorf("malformed label in %q", line)
			}
			name := line[start:i]
			i += 2
			vstart, escaped := i, false
			var val []byte
			for ; i < len(line) && line[i] != '"'; i++ {
				c := line[i]
				if c == '\\' && i+1 < len(line) {
					if !escaped {
						escaped, val = true, append(val, line[vstart:i]...)
					}
					i++
					switch line[i] {
					case 'n':
						c = '\n'
					default:
						c = line[i]
					}
				}
				if escaped {
					val = append(val, c)
				}
			}
			if i >= len(line) {
				return s, fmt.Errorf("unterminated label value in %q", line)
			}
			value := line[vstart:i] // no escapes: no copy
			if escaped {
				value = string(val)
			}
			i++ // closing quote
			if s.labels == nil {
				s.labels = make([][2]string, 0, 3)
			}
			s.labels = append(s.labels, [2]string{name, value})
		}
	}
	fields := strings.Fields(line[i:])
	if len(fields) == 0 || len(fields) > 2 {
		return s, fmt.Errorf("want a value and an optional timestamp in %q", line)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, fmt.Errorf("value in %q: %w", line, err)
	}
	s.value = v
	if len(fields) == 2 {
		ts, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			return s, fmt.Errorf("timestamp in %q: %w", line, err)
		}
		s.timestamp, s.hasTimestamp = ts, true
	}
	return s, nil
}
