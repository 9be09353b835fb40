package helmext

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// maxConditionMessage is the metav1.Condition message limit.
const maxConditionMessage = 32768

// NewStatusClient wraps the client handed to the helm-operator-plugins reconciler.
//
// That reconciler replaces the whole DittoServer status with {conditions, deployedRelease}
// through Status().Update, writes conditions without reason/message/observedGeneration (which
// the metav1.Condition schema rejects) and copies the rendered manifest into the status. The
// wrapper turns those writes into server-side-apply patches under specs.HelmStatusFieldOwner that
// carry only the Helm condition types, normalised to metav1.Condition, and the release name.
// The Go controller applies its own status fields under specs.FieldOwner; conditions are a
// +listType=map, so the API server merges both owners' entries. Writes that would change
// nothing are skipped (compared with the cached object: no request).
func NewStatusClient(c client.Client) client.Client {
	return &helmStatusClient{Client: c}
}

type helmStatusClient struct {
	client.Client
}

// Get serves the Helm reconciler's unstructured DittoServer reads from the typed cache (the
// client would send unstructured reads to the API server, one GET per reconcile).
func (c *helmStatusClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	u, ok := isDittoServer(obj)
	if !ok {
		return c.Client.Get(ctx, key, obj, opts...)
	}
	typed := &v1alpha1.DittoServer{}
	if err := c.Client.Get(ctx, key, typed, opts...); err != nil {
		return err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(typed)
	if err != nil {
		return err
	}
	gvk := u.GroupVersionKind()
	u.Object = m
	u.SetGroupVersionKind(gvk)
	return nil
}

func (c *helmStatusClient) Status() client.SubResourceWriter {
	return &helmStatusWriter{SubResourceWriter: c.Client.Status(), reader: c.Client}
}

type helmStatusWriter struct {
	client.SubResourceWriter
	reader client.Reader
}

func isDittoServer(obj client.Object) (*unstructured.Unstructured, bool) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, false
	}
	gvk := u.GroupVersionKind()
	return u, gvk.Group == v1alpha1.GroupVersion.Group && gvk.Kind == v1alpha1.DittoServerKind
}

// Update applies the Helm reconciler's view of the status as described on NewStatusClient.
func (w *helmStatusWriter) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	u, ok := isDittoServer(obj)
	if !ok {
		return w.SubResourceWriter.Update(ctx, obj, opts...)
	}
	helmConds, release := helmStatusOf(u)

	current := &v1alpha1.DittoServer{}
	haveCurrent := w.reader.Get(ctx, types.NamespacedName{Namespace: u.GetNamespace(), Name: u.GetName()}, current) == nil
	var existing []metav1.Condition
	if haveCurrent {
		existing = current.Status.Conditions
	}
	desired := NormalizeHelmConditions(helmConds, existing, u.GetGeneration(), time.Now())
	if haveCurrent && helmStatusUnchanged(current, desired, release) {
		return nil
	}

	status := map[string]any{"conditions": conditionsToUnstructured(desired)}
	if release != "" {
		status["deployedRelease"] = map[string]any{"name": release}
	}
	patch := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": u.GetAPIVersion(),
		"kind":       u.GetKind(),
		"metadata":   map[string]any{"name": u.GetName(), "namespace": u.GetNamespace()},
		"status":     status,
	}}
	if err := w.Apply(ctx, client.ApplyConfigurationFromUnstructured(patch),
		client.FieldOwner(specs.HelmStatusFieldOwner), client.ForceOwnership); err != nil {
		return err
	}
	// Hand the whole server response back: the Helm reconciler updates this same object right
	// after (finalizer removal), and a stale copy would re-add finalizers removed meanwhile.
	u.Object = patch.Object
	return nil
}

// helmStatusOf reads the conditions and release name the Helm reconciler put into obj.
func helmStatusOf(u *unstructured.Unstructured) ([]metav1.Condition, string) {
	raw, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	var out []metav1.Condition
	for _, item := range raw {
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		c := metav1.Condition{}
		c.Type, _ = m["type"].(string)
		if !specs.IsHelmCondition(c.Type) {
			continue
		}
		s, _ := m["status"].(string)
		c.Status = metav1.ConditionStatus(s)
		c.Reason, _ = m["reason"].(string)
		c.Message, _ = m["message"].(string)
		out = append(out, c)
	}
	release, _, _ := unstructured.NestedString(u.Object, "status", "deployedRelease", "name")
	return out, release
}

// NormalizeHelmConditions turns Helm's conditions into valid metav1.Conditions: an empty reason
// becomes AsExpected, messages are bounded, observedGeneration is set, and the transition time
// is kept from existing while the status does not change.
func NormalizeHelmConditions(in, existing []metav1.Condition, generation int64, now time.Time) []metav1.Condition {
	out := make([]metav1.Condition, 0, len(in))
	for _, c := range in {
		if c.Reason == "" {
			c.Reason = specs.ReasonAsExpected
		}
		if c.Status == "" {
			c.Status = metav1.ConditionUnknown
		}
		if len(c.Message) > maxConditionMessage {
			c.Message = c.Message[:maxConditionMessage-3] + "..."
		}
		c.ObservedGeneration = generation
		c.LastTransitionTime = metav1.NewTime(now.UTC().Truncate(time.Second))
		for _, e := range existing {
			if e.Type == c.Type && e.Status == c.Status {
				c.LastTransitionTime = e.LastTransitionTime
			}
		}
		out = append(out, c)
	}
	return out
}

func helmStatusUnchanged(current *v1alpha1.DittoServer, desired []metav1.Condition, release string) bool {
	currentRelease := ""
	if current.Status.DeployedRelease != nil {
		currentRelease = current.Status.DeployedRelease.Name
	}
	if currentRelease != release {
		return false
	}
	return conditionsContain(current.Status.Conditions, desired)
}

// conditionsContain reports whether every condition of want is in have with the same status,
// reason, message and observedGeneration.
func conditionsContain(have, want []metav1.Condition) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			if h.Type == w.Type {
				found = h.Status == w.Status && h.Reason == w.Reason && h.Message == w.Message &&
					h.ObservedGeneration == w.ObservedGeneration
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func conditionsToUnstructured(conds []metav1.Condition) []any {
	out := make([]any, 0, len(conds))
	for i := range conds {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&conds[i])
		if err != nil {
			continue
		}
		out = append(out, m)
	}
	return out
}
