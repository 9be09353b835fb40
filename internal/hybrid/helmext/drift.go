package helmext

import (
	"context"
	"encoding/json"
	"fmt"

	helmclient "github.com/operator-framework/helm-operator-plugins/pkg/client"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/dittofs/dittofs-operator/internal/specs"
)

// driftRepairingClient replaces the Helm action client's Reconcile (drift repair of an
// unchanged release). Upstream re-reads every object from the API server on each reconcile and
// patches with a three-way strategic merge whose "original" is the expected object itself, so an
// edited list entry (e.g. a Service port) is merged next to the right one instead of replaced.
// Here the objects are read from the cache, compared field by field with what the chart
// rendered (lists must match whole: an extra Service port is drift), and only a differing
// object gets a JSON merge patch that replaces lists whole.
type driftRepairingClient struct {
	helmclient.ActionInterface
	ctx    context.Context
	client client.Client
}

func (d *driftRepairingClient) Reconcile(rel *release.Release) error {
	return RepairDrift(d.ctx, d.client, rel.Namespace, rel.Manifest)
}

// RepairDrift re-creates deleted objects of a rendered manifest and patches changed ones back.
func RepairDrift(ctx context.Context, c client.Client, namespace, manifest string) error {
	for _, doc := range releaseutil.SplitManifests(manifest) {
		expected := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &expected.Object); err != nil {
			return fmt.Errorf("decoding the release manifest: %w", err)
		}
		if len(expected.Object) == 0 || expected.GetKind() == "" {
			continue
		}
		if expected.GetNamespace() == "" {
			expected.SetNamespace(namespace)
		}
		existing, err := cachedObject(c, expected)
		if err != nil {
			return err
		}
		err = c.Get(ctx, types.NamespacedName{Namespace: expected.GetNamespace(), Name: expected.GetName()}, existing)
		if apierrors.IsNotFound(err) {
			if err := c.Create(ctx, expected.DeepCopy()); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("re-creating %s %s: %w", expected.GetKind(), expected.GetName(), err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("reading %s %s: %w", expected.GetKind(), expected.GetName(), err)
		}
		have, err := runtime.DefaultUnstructuredConverter.ToUnstructured(existing)
		if err != nil {
			return err
		}
		want := desiredFields(expected)
		if specs.FieldsMatch(want, have, false) {
			continue
		}
		patch, err := json.Marshal(want)
		if err != nil {
			return err
		}
		if err := c.Patch(ctx, existing, client.RawPatch(types.MergePatchType, patch)); err != nil {
			return fmt.Errorf("reverting drift of %s %s: %w", expected.GetKind(), expected.GetName(), err)
		}
	}
	return nil
}

// cachedObject returns an empty typed object of the manifest's kind when the scheme knows it,
// so the read is served by the manager's cache (unstructured reads go to the API server).
func cachedObject(c client.Client, u *unstructured.Unstructured) (client.Object, error) {
	obj, err := c.Scheme().New(u.GroupVersionKind())
	if err != nil {
		existing := &unstructured.Unstructured{}
		existing.SetGroupVersionKind(u.GroupVersionKind())
		return existing, nil
	}
	co, ok := obj.(client.Object)
	if !ok {
		return nil, fmt.Errorf("%s is not an object kind", u.GroupVersionKind())
	}
	return co, nil
}

// desiredFields is what the chart owns in an object: labels, annotations, ownerReferences and
// every top-level field but metadata and status.
func desiredFields(u *unstructured.Unstructured) map[string]any {
	out := map[string]any{}
	meta := map[string]any{}
	if l := u.GetLabels(); len(l) > 0 {
		meta["labels"] = anyMap(l)
	}
	if a := u.GetAnnotations(); len(a) > 0 {
		meta["annotations"] = anyMap(a)
	}
	if refs, ok := u.Object["metadata"].(map[string]any)["ownerReferences"]; ok {
		meta["ownerReferences"] = refs
	}
	if len(meta) > 0 {
		out["metadata"] = meta
	}
	for k, v := range u.Object {
		switch k {
		case "apiVersion", "kind", "metadata", "status":
		default:
			out[k] = v
		}
	}
	return out
}

func anyMap(in map[string]string) map[string]any {
	out := make(map[string]any, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}
