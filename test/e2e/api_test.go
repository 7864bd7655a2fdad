package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// seedDeployment is the seed walkthrough's deployment.yaml.
const seedDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3 # ← This is your desired state
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
`

func TestKubectlVerboseShowsRequest(t *testing.T) {
	c := startCluster(t)
	_, stderr, err := c.kubectlVersion("kubectl", "", "get", "pods", "-v=6")
	if err != nil {
		t.Fatalf("kubectl get pods -v=6: %v\n%s", err, stderr)
	}
	want := fmt.Sprintf("GET https://127.0.0.1:%d/api/v1/namespaces/default/pods", c.Port)
	if !strings.Contains(stderr, want) || !regexp.MustCompile(regexp.QuoteMeta(want)+`.*200 OK`).MatchString(stderr) {
		t.Fatalf("kubectl -v=6 output lacks %q ... 200 OK:\n%s", want, stderr)
	}
}

func TestAPIResourcesListsEveryResource(t *testing.T) {
	c := startCluster(t)
	for _, bin := range []string{"kubectl", "kubectl.1.27", "kubectl.1.33"} {
		t.Run(bin, func(t *testing.T) {
			out, stderr, err := c.kubectlVersion(bin, "", "api-resources")
			if err != nil {
				t.Fatalf("%s api-resources: %v\n%s", bin, err, stderr)
			}
			for _, want := range []string{
				"bindings", "componentstatuses", "configmaps", "endpoints", "events", "limitranges", "namespaces", "nodes",
				"persistentvolumeclaims", "persistentvolumes", "pods", "podtemplates", "replicationcontrollers", "resourcequotas",
				"secrets", "serviceaccounts", "services", "controllerrevisions", "daemonsets", "deployments", "replicasets",
				"statefulsets", "cronjobs", "jobs", "horizontalpodautoscalers", "leases", "endpointslices",
				"clusterrolebindings", "clusterroles", "rolebindings", "roles", "poddisruptionbudgets", "ingressclasses",
				"ingresses", "networkpolicies", "priorityclasses", "storageclasses", "certificatesigningrequests",
				"customresourcedefinitions",
			} {
				if !regexp.MustCompile(`(?m)^` + want + `\s`).MatchString(out) {
					t.Errorf("%s api-resources lacks %s", bin, want)
				}
			}
			if !regexp.MustCompile(`(?m)^deployments\s+deploy\s+apps/v1\s+true\s+Deployment`).MatchString(out) {
				t.Errorf("deployments row not as upstream:\n%s", out)
			}
		})
	}
}

func TestApplySeedDeployment(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "deployment.yaml")
	if err := os.WriteFile(file, []byte(seedDeployment), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{"kubectl", "kubectl.1.27", "kubectl.1.33"} {
		t.Run(bin, func(t *testing.T) {
			out, stderr, err := c.kubectlVersion(bin, "", "apply", "-f", file)
			if err != nil {
				t.Fatalf("apply: %v\n%s", err, stderr)
			}
			if !strings.Contains(out, "deployment.apps/web") {
				t.Fatalf("apply output: %q", out)
			}
			out, stderr, err = c.kubectlVersion(bin, "", "apply", "-f", file)
			if err != nil || strings.TrimSpace(out) != "deployment.apps/web unchanged" {
				t.Fatalf("second apply: %q %v %s", out, err, stderr)
			}
		})
	}
	out := c.kubectl("apply", "--server-side", "-f", file)
	if !strings.Contains(out, "deployment.apps/web serverside-applied") {
		t.Fatalf("server-side apply output: %q", out)
	}
	out = c.kubectl("get", "deployment", "web")
	// No nodes: the controllers create the ReplicaSet and pods (UP-TO-DATE
	// may already count them) but none becomes ready.
	if !regexp.MustCompile(`(?m)^NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE\n web\s+0/3\s+[0-3]\s+0\s+\d+s`).MatchString(strings.Replace(out, "\nweb", "\n web", 1)) {
		t.Fatalf("get deployment web:\n%s", out)
	}
}

func TestKubectlEditingVerbs(t *testing.T) {
	c := startCluster(t)
	out := c.kubectl("create", "deployment", "web", "--image=nginx:1.25", "--replicas=3")
	if strings.TrimSpace(out) != "deployment.apps/web created" {
		t.Fatalf("create: %q", out)
	}
	if out := c.kubectl("get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"); out != "3" {
		t.Fatalf("replicas = %q", out)
	}
	if out := c.kubectl("scale", "deployment", "web", "--replicas=5"); !strings.Contains(out, "deployment.apps/web scaled") {
		t.Fatalf("scale: %q", out)
	}
	if out := c.kubectl("get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"); out != "5" {
		t.Fatalf("replicas after scale = %q", out)
	}
	c.kubectl("label", "deployment", "web", "tier=frontend")
	c.kubectl("annotate", "deployment", "web", "note=hello")
	if out := c.kubectl("get", "deployment", "web", "-o", "jsonpath={.metadata.labels.tier} {.metadata.annotations.note}"); out != "frontend hello" {
		t.Fatalf("label/annotate: %q", out)
	}
	c.kubectl("patch", "deployment", "web", "--type=merge", "-p", `{"spec":{"replicas":2}}`)
	c.kubectl("patch", "deployment", "web", "--type=json", "-p", `[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.26"}]`)
	c.kubectl("patch", "deployment", "web", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"nginx","env":[{"name":"A","value":"1"}]}]}}}}`)
	out = c.kubectl("get", "deployment", "web", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].env[0].name}")
	if out != "2 nginx:1.26 A" {
		t.Fatalf("after patches: %q", out)
	}
	// kubectl edit through an editor script that changes replicas.
	editor := filepath.Join(t.TempDir(), "editor.sh")
	if err := os.WriteFile(editor, []byte("#!/bin/sh\nsed -i 's/replicas: 2/replicas: 4/' \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBE_EDITOR", editor)
	if out := c.kubectl("edit", "deployment", "web"); !strings.Contains(out, "deployment.apps/web edited") {
		t.Fatalf("edit: %q", out)
	}
	if out := c.kubectl("get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"); out != "4" {
		t.Fatalf("replicas after edit = %q", out)
	}
	if out := c.kubectl("delete", "deployment", "web"); strings.TrimSpace(out) != `deployment.apps "web" deleted` &&
		!strings.Contains(out, `deployment.apps "web" deleted`) {
		t.Fatalf("delete: %q", out)
	}
	stderr := c.kubectlFail("", "get", "deployment", "web")
	if !strings.Contains(stderr, `Error from server (NotFound): deployments.apps "web" not found`) {
		t.Fatalf("get after delete: %q", stderr)
	}
}

func TestKubectlWatchSeesUpdate(t *testing.T) {
	c := startCluster(t)
	c.kubectl("create", "configmap", "watched", "--from-literal=a=1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// kubectl get --watch lists (printing ADDED), then watches from the
	// list's resourceVersion: an update made after the ADDED line must
	// arrive, however late the watch itself is opened.
	cmd := exec.CommandContext(ctx, "kubectl", "--kubeconfig", c.Kubeconfig, "get", "configmap", "watched", "--watch", "--output-watch-events")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	waitLine := func(want string) {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("kubectl --watch ended before a %s line", want)
				}
				if strings.Contains(l, want) && strings.Contains(l, "watched") {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no %s line from kubectl --watch", want)
			}
		}
	}
	waitLine("ADDED")
	c.kubectl("label", "configmap", "watched", "changed=yes")
	waitLine("MODIFIED")
}

func TestExplainAndClusterInfo(t *testing.T) {
	c := startCluster(t)
	for _, bin := range []string{"kubectl", "kubectl.1.27", "kubectl.1.33"} {
		out, stderr, err := c.kubectlVersion(bin, "", "explain", "deployment.spec.replicas")
		if err != nil {
			t.Fatalf("%s explain: %v\n%s", bin, err, stderr)
		}
		if !strings.Contains(out, "KIND:") || !strings.Contains(out, "Deployment") || !strings.Contains(out, "replicas") ||
			!strings.Contains(out, "Number of desired pods") {
			t.Fatalf("%s explain output:\n%s", bin, out)
		}
	}
	out, stderr, err := c.kubectlVersion("kubectl", "", "get", "componentstatuses")
	if err != nil || !regexp.MustCompile(`(?m)^etcd-0\s+Healthy\s+ok`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^scheduler\s+Healthy`).MatchString(out) || !strings.Contains(stderr, "v1 ComponentStatus is deprecated in v1.19+") {
		t.Fatalf("componentstatuses: %v\n%s\n%s", err, out, stderr)
	}
	out = c.kubectl("cluster-info")
	if !strings.Contains(out, fmt.Sprintf("Kubernetes control plane is running at https://127.0.0.1:%d", c.Port)) {
		t.Fatalf("cluster-info:\n%s", out)
	}
}

const crd = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {type: string}
              image: {type: string}
    additionalPrinterColumns:
    - name: Spec
      type: string
      jsonPath: .spec.cronSpec
`

const cr = `apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: my-new-cron-object
spec:
  cronSpec: "* * * * */5"
  image: my-awesome-cron-image
`

func TestCustomResources(t *testing.T) {
	c := startCluster(t)
	c.kubectlIn(crd, "apply", "-f", "-")
	out := c.kubectlIn(cr, "apply", "-f", "-")
	if !strings.Contains(out, "crontab.stable.example.com/my-new-cron-object created") {
		t.Fatalf("create CR: %q", out)
	}
	out = c.kubectl("get", "crontabs")
	if !regexp.MustCompile(`(?m)^NAME\s+SPEC\n my-new-cron-object\s+\* \* \* \* \*/5`).MatchString(strings.Replace(out, "\nmy", "\n my", 1)) {
		t.Fatalf("get crontabs:\n%s", out)
	}
	if out := c.kubectl("get", "ct", "my-new-cron-object", "-o", "jsonpath={.spec.image}"); out != "my-awesome-cron-image" {
		t.Fatalf("get ct: %q", out)
	}
	c.kubectl("delete", "crd", "crontabs.stable.example.com")
	eventually(t, 10*time.Second, "crontabs to disappear from discovery", func() bool {
		_, _, err := c.kubectlVersion("kubectl", "", "get", "crontabs")
		return err != nil
	})
}

func TestBadInputGetsTheRightStatus(t *testing.T) {
	c := startCluster(t)
	stderr := c.kubectlFail(strings.Replace(seedDeployment, "replicas: 3", "replicas: -1", 1), "apply", "-f", "-")
	if !strings.Contains(stderr, `The Deployment "web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0`) {
		t.Fatalf("invalid replicas: %q", stderr)
	}
	stderr = c.kubectlFail("", "create", "configmap", "Bad_Name")
	if !strings.Contains(stderr, `ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain`) {
		t.Fatalf("invalid name: %q", stderr)
	}
	dup := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dup}\n"
	c.kubectlIn(dup, "create", "-f", "-")
	stderr = c.kubectlFail(dup, "create", "-f", "-")
	if !strings.Contains(stderr, `Error from server (AlreadyExists)`) || !strings.Contains(stderr, `configmaps "dup" already exists`) {
		t.Fatalf("name clash: %q", stderr)
	}
	stderr = c.kubectlFail("", "get", "--raw", "/api/v1/namespaces/default/frobs")
	if !strings.Contains(stderr, "NotFound") {
		t.Fatalf("unknown resource: %q", stderr)
	}
	stderr = c.kubectlFail(`{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": `, "create", "--raw", "/api/v1/namespaces/default/configmaps", "-f", "-")
	if !strings.Contains(stderr, "BadRequest") {
		t.Fatalf("malformed json: %q", stderr)
	}
	big := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"a":"%s"}}`, strings.Repeat("x", 4<<20))
	stderr = c.kubectlFail(big, "create", "--raw", "/api/v1/namespaces/default/configmaps", "-f", "-")
	if !strings.Contains(stderr, "RequestEntityTooLarge") && !strings.Contains(stderr, "413") {
		t.Fatalf("too large: %q", stderr)
	}
	stderr = c.kubectlFail(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"l","labels":{"k":"`+strings.Repeat("v", 64)+`"}}}`,
		"create", "--raw", "/api/v1/namespaces/default/configmaps", "-f", "-")
	if !strings.Contains(stderr, "Invalid") && !strings.Contains(stderr, "422") {
		t.Fatalf("invalid label: %q", stderr)
	}
	stderr = c.kubectlFail(strings.Replace(seedDeployment, "replicas: 3", "replicas: 3\n  bogusField: 1", 1), "apply", "-f", "-")
	if !strings.Contains(stderr, `unknown field "spec.bogusField"`) {
		t.Fatalf("strict field validation: %q", stderr)
	}
}

func TestRestartKeepsEverything(t *testing.T) {
	c := startCluster(t)
	c.kubectlIn(seedDeployment, "apply", "-f", "-")
	c.kubectl("create", "configmap", "keep", "--from-literal=k=v")
	// The controllers keep writing status, so compare identity and spec
	// rather than resourceVersion.
	const what = "jsonpath={.metadata.uid} {.metadata.generation} {.metadata.creationTimestamp} {.spec}"
	before := c.kubectl("get", "deployment", "web", "-o", what)
	c.restart()
	after := c.kubectl("get", "deployment", "web", "-o", what)
	if before != after {
		t.Fatalf("deployment changed across restart: %q → %q", before, after)
	}
	if out := c.kubectl("get", "configmap", "keep", "-o", "jsonpath={.data.k}"); out != "v" {
		t.Fatalf("configmap after restart: %q", out)
	}
	for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		c.kubectl("get", "namespace", ns)
	}
}

// TestInformerAcrossRestart: an informer sees create/update/delete in order,
// and its list+watch resumes after a server restart with no event lost.
func TestInformerAcrossRestart(t *testing.T) {
	c := startCluster(t)
	client := c.client()
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace("default"))
	inf := factory.Core().V1().ConfigMaps().Informer()
	type event struct{ kind, name, value string }
	events := make(chan event, 100)
	// Every namespace also holds the kube-root-ca.crt ConfigMap, which its
	// publisher may create at any moment: only the test's own count.
	_, err := inf.AddEventHandler(cache.FilteringResourceEventHandler{FilterFunc: func(o interface{}) bool {
		if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = d.Obj
		}
		cm, ok := o.(*corev1.ConfigMap)
		return !ok || cm.Name != "kube-root-ca.crt"
	}, Handler: cache.ResourceEventHandlerFuncs{
		AddFunc: func(o interface{}) { cm := o.(*corev1.ConfigMap); events <- event{"add", cm.Name, cm.Data["v"]} },
		UpdateFunc: func(_, o interface{}) {
			cm := o.(*corev1.ConfigMap)
			events <- event{"update", cm.Name, cm.Data["v"]}
		},
		DeleteFunc: func(o interface{}) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			cm := o.(*corev1.ConfigMap)
			events <- event{"delete", cm.Name, ""}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// Shutdown waits for the informers, which stop when ctx is cancelled:
	// cancel must run first (defers run last-in first-out).
	defer factory.Shutdown()
	defer cancel()
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	next := func() event {
		t.Helper()
		select {
		case e := <-events:
			return e
		case <-time.After(30 * time.Second):
			t.Fatal("timed out waiting for informer event")
			return event{}
		}
	}
	expect := func(want event) {
		t.Helper()
		if got := next(); got != want {
			t.Fatalf("event = %+v, want %+v", got, want)
		}
	}
	c.kubectl("create", "configmap", "a", "--from-literal=v=1")
	expect(event{"add", "a", "1"})
	c.kubectl("patch", "configmap", "a", "--type=merge", "-p", `{"data":{"v":"2"}}`)
	expect(event{"update", "a", "2"})
	c.kubectl("delete", "configmap", "a")
	expect(event{"delete", "a", ""})

	c.stop()
	// Changes that land while the informer's watch is broken must not be lost.
	c.start()
	c.kubectl("create", "configmap", "b", "--from-literal=v=after-restart")
	for {
		e := next()
		if e.kind == "update" && e.name != "b" {
			continue // resync after relist
		}
		if e != (event{"add", "b", "after-restart"}) {
			t.Fatalf("after restart: event %+v", e)
		}
		break
	}
}
