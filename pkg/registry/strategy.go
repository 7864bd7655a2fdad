package registry

import (
	"fmt"
	"reflect"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-project/skiff/pkg/registry/validation"
)

// Strategy is how the API server treats one resource beyond plain storage:
// what a create or update may set, how generation moves, what validation
// applies and which fields a field selector can use. The zero-configured
// strategy returned by StrategyFor is correct for every built-in resource.
type Strategy struct {
	// hasStatus is true when the resource has a status subresource, so the
	// main resource endpoint must not change status (and vice versa).
	hasStatus bool
	// fieldSet extracts the selectable fields of an object.
	fieldSet func(obj runtime.Object) fields.Set
	// createOnUpdate allows PUT to create a missing object.
	createOnUpdate bool
}

// StrategyFor returns the strategy of r.
func StrategyFor(r *Resource) *Strategy {
	s := &Strategy{hasStatus: r.HasSubresource("status"), fieldSet: fieldSetFor(r)}
	switch r.Resource {
	case "endpoints", "events", "leases", "limitranges", "componentstatuses":
		s.createOnUpdate = true
	}
	return s
}

// AllowCreateOnUpdate reports whether a PUT of a missing object creates it.
func (s *Strategy) AllowCreateOnUpdate() bool { return s.createOnUpdate }

// PrepareForCreate clears what a client may not set on create (status,
// for resources with a status subresource) and sets the initial status and
// generation as upstream does. obj is mutated.
func (s *Strategy) PrepareForCreate(obj runtime.Object) {
	if a, err := meta.Accessor(obj); err == nil && hasField(obj, "Spec") {
		a.SetGeneration(1)
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		o.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: qosClass(&o.Spec)}
		return
	case *corev1.Secret:
		mergeStringData(o)
		return
	case *batchv1.Job:
		generateJobSelector(o)
		o.Status = batchv1.JobStatus{}
		return
	case *corev1.Namespace:
		o.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
		if !hasString(o.Spec.Finalizers, corev1.FinalizerKubernetes) {
			o.Spec.Finalizers = append(o.Spec.Finalizers, corev1.FinalizerKubernetes)
		}
		return
	case *corev1.Node:
		// kubelets register nodes with their status, as upstream allows.
		return
	case *corev1.PersistentVolume:
		o.Status = corev1.PersistentVolumeStatus{Phase: corev1.VolumePending}
		return
	case *corev1.PersistentVolumeClaim:
		o.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending}
		return
	case *certificatesv1.CertificateSigningRequest:
		o.Status = certificatesv1.CertificateSigningRequestStatus{}
		return
	case *unstructured.Unstructured:
		if o.GetKind() == "CustomResourceDefinition" {
			prepareCRD(o)
		}
		return
	}
	if s.hasStatus {
		resetField(obj, "Status")
	}
}

// PrepareForUpdate makes an update through the main endpoint keep the
// stored status (when status is a subresource) and bumps generation when the
// spec changed. obj is mutated; old is not.
func (s *Strategy) PrepareForUpdate(obj, old runtime.Object) {
	if s.hasStatus {
		if _, isNode := obj.(*corev1.Node); !isNode {
			copyField(obj, old, "Status")
		}
	}
	switch o := obj.(type) {
	case *unstructured.Unstructured:
		if o.GetKind() == "CustomResourceDefinition" {
			prepareCRD(o)
		}
	case *corev1.Secret:
		mergeStringData(o)
	case *corev1.Service:
		if oldSvc, ok := old.(*corev1.Service); ok {
			prepareServiceUpdate(o, oldSvc)
		}
	}
	s.bumpGeneration(obj, old)
}

// mergeStringData folds the write-only stringData into data, as upstream.
func mergeStringData(secret *corev1.Secret) {
	if len(secret.StringData) == 0 {
		return
	}
	if secret.Data == nil {
		secret.Data = map[string][]byte{}
	}
	for k, v := range secret.StringData {
		secret.Data[k] = []byte(v)
	}
	secret.StringData = nil
}

// generateJobSelector gives a Job without a manual selector the
// controller-uid selector and template labels upstream generates.
func generateJobSelector(job *batchv1.Job) {
	if job.Spec.ManualSelector != nil && *job.Spec.ManualSelector {
		return
	}
	uid := string(job.UID)
	if job.Spec.Template.Labels == nil {
		job.Spec.Template.Labels = map[string]string{}
	}
	job.Spec.Template.Labels["batch.kubernetes.io/controller-uid"] = uid
	job.Spec.Template.Labels["batch.kubernetes.io/job-name"] = job.Name
	job.Spec.Template.Labels["controller-uid"] = uid
	job.Spec.Template.Labels["job-name"] = job.Name
	if job.Spec.Selector == nil {
		job.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"batch.kubernetes.io/controller-uid": uid}}
	}
}

// PrepareForInternalUpdate prepares a change the API server constructs
// itself (binding, scale, finalize, graceful deletion): only generation
// bookkeeping applies.
func (s *Strategy) PrepareForInternalUpdate(obj, old runtime.Object) {
	s.bumpGeneration(obj, old)
}

// PrepareForStatusUpdate makes an update through the status subresource
// change only status: everything else is taken from old.
func (s *Strategy) PrepareForStatusUpdate(obj, old runtime.Object) {
	copyField(obj, old, "Spec")
	na, err1 := meta.Accessor(obj)
	oa, err2 := meta.Accessor(old)
	if err1 == nil && err2 == nil {
		// Status writers may annotate (the deployment controller records
		// revisions there) but not relabel, as upstream's status strategies.
		na.SetLabels(oa.GetLabels())
		na.SetFinalizers(oa.GetFinalizers())
		na.SetOwnerReferences(oa.GetOwnerReferences())
		na.SetDeletionTimestamp(oa.GetDeletionTimestamp())
		na.SetGeneration(oa.GetGeneration())
	}
}

func (s *Strategy) bumpGeneration(obj, old runtime.Object) {
	if !hasField(obj, "Spec") {
		return
	}
	na, err1 := meta.Accessor(obj)
	oa, err2 := meta.Accessor(old)
	if err1 != nil || err2 != nil {
		return
	}
	na.SetGeneration(oa.GetGeneration())
	if !equality.Semantic.DeepEqual(fieldValue(obj, "Spec"), fieldValue(old, "Spec")) {
		na.SetGeneration(oa.GetGeneration() + 1)
	}
}

// Validate returns the field errors of a new object.
func (s *Strategy) Validate(obj runtime.Object) field.ErrorList { return validation.Validate(obj) }

// ValidateUpdate returns the field errors of an update.
func (s *Strategy) ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	return validation.ValidateUpdate(obj, old)
}

// ValidateStatusUpdate returns the field errors of a status update.
func (s *Strategy) ValidateStatusUpdate(obj, old runtime.Object) field.ErrorList {
	return validation.ValidateStatusUpdate(obj, old)
}

// FieldSet returns the fields of obj a field selector may match.
func (s *Strategy) FieldSet(obj runtime.Object) fields.Set { return s.fieldSet(obj) }

// fieldSetFor returns the field extraction of r, as upstream's
// GetAttrs/SelectableFields: metadata.name and metadata.namespace always,
// plus a few per-type fields clients rely on.
func fieldSetFor(r *Resource) func(runtime.Object) fields.Set {
	return func(obj runtime.Object) fields.Set {
		set := fields.Set{}
		if a, err := meta.Accessor(obj); err == nil {
			set["metadata.name"] = a.GetName()
			if r.Namespaced {
				set["metadata.namespace"] = a.GetNamespace()
			}
		}
		switch o := obj.(type) {
		case *corev1.Pod:
			set["spec.nodeName"] = o.Spec.NodeName
			set["spec.restartPolicy"] = string(o.Spec.RestartPolicy)
			set["spec.schedulerName"] = o.Spec.SchedulerName
			set["spec.serviceAccountName"] = o.Spec.ServiceAccountName
			set["spec.hostNetwork"] = strconv.FormatBool(o.Spec.HostNetwork)
			set["status.phase"] = string(o.Status.Phase)
			set["status.podIP"] = o.Status.PodIP
			set["status.nominatedNodeName"] = o.Status.NominatedNodeName
		case *corev1.Event:
			addEventFields(set, o.InvolvedObject, o.Reason, o.Source.Component, o.Type, o.ReportingController)
		case *eventsv1.Event:
			addEventFields(set, o.Regarding, o.Reason, o.DeprecatedSource.Component, o.Type, o.ReportingController)
		case *corev1.Node:
			set["spec.unschedulable"] = strconv.FormatBool(o.Spec.Unschedulable)
		case *corev1.Secret:
			set["type"] = string(o.Type)
		case *corev1.Namespace:
			set["status.phase"] = string(o.Status.Phase)
		case *corev1.Service:
			set["spec.clusterIP"] = o.Spec.ClusterIP
			set["spec.type"] = string(o.Spec.Type)
		case *corev1.ReplicationController:
			set["status.replicas"] = strconv.Itoa(int(o.Status.Replicas))
		case *appsv1.ReplicaSet:
			set["status.replicas"] = strconv.Itoa(int(o.Status.Replicas))
		case *batchv1.Job:
			set["status.successful"] = strconv.Itoa(int(o.Status.Succeeded))
		case *certificatesv1.CertificateSigningRequest:
			set["spec.signerName"] = o.Spec.SignerName
		}
		return set
	}
}

func addEventFields(set fields.Set, ref corev1.ObjectReference, reason, source, typ, controller string) {
	for prefix, v := range map[string]string{
		"kind": ref.Kind, "namespace": ref.Namespace, "name": ref.Name, "uid": string(ref.UID),
		"apiVersion": ref.APIVersion, "resourceVersion": ref.ResourceVersion, "fieldPath": ref.FieldPath,
	} {
		set["involvedObject."+prefix] = v
		set["regarding."+prefix] = v
	}
	set["reason"] = reason
	set["source"] = source
	set["type"] = typ
	set["reportingComponent"] = controller
	set["reportingController"] = controller
}

// qosClass computes the pod's QoS class the way upstream does for
// status.qosClass: Guaranteed when every container has equal cpu and memory
// requests and limits, BestEffort when none has any, Burstable otherwise.
func qosClass(spec *corev1.PodSpec) corev1.PodQOSClass {
	requests, limits := corev1.ResourceList{}, corev1.ResourceList{}
	guaranteed := true
	all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	for _, c := range all {
		for name, q := range c.Resources.Requests {
			if name == corev1.ResourceCPU || name == corev1.ResourceMemory {
				if !q.IsZero() {
					requests[name] = q
				}
			}
		}
		complete := 0
		for name, q := range c.Resources.Limits {
			if name == corev1.ResourceCPU || name == corev1.ResourceMemory {
				if !q.IsZero() {
					limits[name] = q
					complete++
				}
			}
		}
		if complete < 2 {
			guaranteed = false
		}
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[name]
			lim := c.Resources.Limits[name]
			if hasReq && req.Cmp(lim) != 0 {
				guaranteed = false
			}
		}
	}
	if len(requests) == 0 && len(limits) == 0 {
		return corev1.PodQOSBestEffort
	}
	if guaranteed {
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

// prepareCRD fills a CRD's status the way upstream's CRD controllers
// converge it: names accepted, established, stored versions recorded.
func prepareCRD(u *unstructured.Unstructured) {
	names, _, _ := unstructured.NestedMap(u.Object, "spec", "names")
	status := map[string]interface{}{
		"acceptedNames": names,
		"conditions": []interface{}{
			map[string]interface{}{"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
			map[string]interface{}{"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
		},
	}
	var stored []interface{}
	versions, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
	for _, v := range versions {
		if m, ok := v.(map[string]interface{}); ok && m["storage"] == true {
			stored = append(stored, m["name"])
		}
	}
	status["storedVersions"] = stored
	u.Object["status"] = status
}

func hasString(list []corev1.FinalizerName, s corev1.FinalizerName) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func structValue(obj runtime.Object) (reflect.Value, bool) {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return reflect.Value{}, false
	}
	v = v.Elem()
	return v, v.Kind() == reflect.Struct
}

func hasField(obj runtime.Object, name string) bool {
	v, ok := structValue(obj)
	return ok && v.FieldByName(name).IsValid()
}

func fieldValue(obj runtime.Object, name string) interface{} {
	v, ok := structValue(obj)
	if !ok {
		return nil
	}
	f := v.FieldByName(name)
	if !f.IsValid() {
		return nil
	}
	return f.Interface()
}

func resetField(obj runtime.Object, name string) {
	v, ok := structValue(obj)
	if !ok {
		if u, isU := obj.(*unstructured.Unstructured); isU && name == "Status" {
			delete(u.Object, "status")
		}
		return
	}
	if f := v.FieldByName(name); f.IsValid() && f.CanSet() {
		f.Set(reflect.Zero(f.Type()))
	}
}

// copyField sets dst.name = src.name (a deep copy for unstructured).
func copyField(dst, src runtime.Object, name string) {
	if du, ok := dst.(*unstructured.Unstructured); ok {
		su, ok := src.(*unstructured.Unstructured)
		if !ok {
			return
		}
		key := map[string]string{"Status": "status", "Spec": "spec"}[name]
		if val, found := su.Object[key]; found {
			du.Object[key] = runtime.DeepCopyJSONValue(val)
		} else {
			delete(du.Object, key)
		}
		return
	}
	dv, ok1 := structValue(dst)
	sv, ok2 := structValue(src)
	if !ok1 || !ok2 {
		return
	}
	df, sf := dv.FieldByName(name), sv.FieldByName(name)
	if df.IsValid() && sf.IsValid() && df.CanSet() && df.Type() == sf.Type() {
		df.Set(sf)
	}
}

// KeyPrefix returns the etcd key prefix of a resource, following the seed's
// layout: /registry/<resource>/ for built-in resources (events.k8s.io
// events share core events' keys), /registry/<group>/<resource>/ for custom
// resources so they cannot collide with built-ins.
func KeyPrefix(group, resource string, custom bool) string {
	if custom {
		return fmt.Sprintf("/registry/%s/%s/", group, resource)
	}
	return "/registry/" + resource + "/"
}
