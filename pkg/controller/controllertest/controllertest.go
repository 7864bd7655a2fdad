// Package controllertest holds the test support the controller packages
// share: seeding informer caches without running informers, naming objects
// the fake clientset creates from a generateName, and rendering the writes
// and events a sync produced so a table test can compare them with
// cmp.Diff.
//
// It is imported only by tests.
package controllertest

import (
	"fmt"
	"sync/atomic"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/scheme"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
)

// Seed adds each of objs to the indexer of factory's informer for the
// object's type, as if the informer had listed it; no informer runs. An
// object of a type the client-go scheme does not know, or that factory has
// no informer for, fails the test.
func Seed(t testing.TB, factory informers.SharedInformerFactory, objs ...runtime.Object) {
	t.Helper()
	for _, o := range objs {
		gvks, _, err := scheme.Scheme.ObjectKinds(o)
		if err != nil {
			t.Fatalf("seeding %T: %v", o, err)
		}
		gvr, _ := meta.UnsafeGuessKindToResource(gvks[0])
		inf, err := factory.ForResource(gvr)
		if err != nil {
			t.Fatalf("seeding %T: %v", o, err)
		}
		if err := inf.Informer().GetIndexer().Add(o); err != nil {
			t.Fatalf("seeding %T: %v", o, err)
		}
	}
}

// Reactors is what GenerateNames needs of a fake clientset; the typed and
// metadata fakes (embedding clienttesting.Fake) have it.
type Reactors interface {
	PrependReactor(verb, resource string, reaction clienttesting.ReactionFunc)
}

// GenerateNames makes the fake client name each created resource object
// that has no name after its generateName followed by a five-digit counter
// starting at 00001, as the fake does not implement generateName. The
// counter is safe for concurrent creates. The recorded create action keeps
// the object as the caller sent it, without the name.
func GenerateNames(client Reactors, resource string) {
	var n atomic.Int32
	client.PrependReactor("create", resource, func(a clienttesting.Action) (bool, runtime.Object, error) {
		m, err := meta.Accessor(a.(clienttesting.CreateAction).GetObject())
		if err != nil {
			return true, nil, fmt.Errorf("naming created %s: %w", resource, err)
		}
		if m.GetName() == "" {
			m.SetName(fmt.Sprintf("%s%05d", m.GetGenerateName(), n.Add(1)))
		}
		return false, nil, nil
	})
}

// WriteOption changes how Writes renders an action.
type WriteOption func(*writeFormat)

type writeFormat struct {
	generateName bool // creates show the generateName, even if named
	patchBody    bool // patches show the patch body after the name
}

// CreatesByGenerateName renders every create with its object's generateName
// in place of the name, for controllers whose creates are all generated.
func CreatesByGenerateName() WriteOption {
	return func(f *writeFormat) { f.generateName = true }
}

// PatchBodies appends the patch body to each patch: "patch resource name
// body".
func PatchBodies() WriteOption {
	return func(f *writeFormat) { f.patchBody = true }
}

// Writes renders the create, update, patch and delete actions among
// actions, in order, as "verb resource[/subresource] name"; every other
// verb (get, list, watch) is left out. A create shows its object's name, or
// its generateName when it has no name. The result is nil when there are no
// writes, so a converged sync compares equal to a nil want.
func Writes(actions []clienttesting.Action, opts ...WriteOption) []string {
	var f writeFormat
	for _, o := range opts {
		o(&f)
	}
	var out []string
	for _, a := range actions {
		res := a.GetResource().Resource
		if a.GetSubresource() != "" {
			res += "/" + a.GetSubresource()
		}
		var name string
		switch a.GetVerb() {
		case "create":
			m := a.(clienttesting.CreateAction).GetObject().(metav1.Object)
			name = m.GetName()
			if name == "" || f.generateName {
				name = m.GetGenerateName()
			}
		case "update":
			name = a.(clienttesting.UpdateAction).GetObject().(metav1.Object).GetName()
		case "patch":
			p := a.(clienttesting.PatchAction)
			name = p.GetName()
			if f.patchBody {
				name += " " + string(p.GetPatch())
			}
		case "delete":
			name = a.(clienttesting.DeleteAction).GetName()
		default:
			continue
		}
		out = append(out, a.GetVerb()+" "+res+" "+name)
	}
	return out
}

// Events drains the events rec has buffered and returns them in the order
// they were recorded, nil when there were none. It does not wait for
// events still being recorded.
func Events(rec *record.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}
