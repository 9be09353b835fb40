package specs

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// GrownClaims returns the claim templates of desired that ask for more storage than the same
// template of existing, and whether every other difference is none (same names and classes).
// Only such a change can be applied to a running server: claim templates are immutable, so the
// PVCs are resized and the StatefulSet re-created (docs/ARCHITECTURE.md, "Decisions").
func GrownClaims(existing, desired *appsv1.StatefulSet) (grown map[string]resource.Quantity, onlyGrowth bool) {
	have := map[string]corev1.PersistentVolumeClaim{}
	for _, c := range existing.Spec.VolumeClaimTemplates {
		have[c.Name] = c
	}
	if len(have) != len(desired.Spec.VolumeClaimTemplates) {
		return nil, false
	}
	grown = map[string]resource.Quantity{}
	for _, want := range desired.Spec.VolumeClaimTemplates {
		cur, ok := have[want.Name]
		if !ok || StorageClassOf(&cur) != StorageClassOf(&want) {
			return nil, false
		}
		w, c := want.Spec.Resources.Requests[corev1.ResourceStorage], cur.Spec.Resources.Requests[corev1.ResourceStorage]
		if w.Cmp(c) > 0 {
			grown[want.Name] = w
		}
	}
	return grown, true
}

// StorageClassOf is the claim's StorageClass ("" for the cluster default).
func StorageClassOf(pvc *corev1.PersistentVolumeClaim) string {
	if pvc.Spec.StorageClassName == nil {
		return ""
	}
	return *pvc.Spec.StorageClassName
}

// SizeField is the spec.storage field that sizes a claim template.
func SizeField(template string) string {
	switch template {
	case VolumeMetadata:
		return "spec.storage.metadataSize"
	case VolumeCache:
		return "spec.storage.cacheSize"
	case VolumeControlPlane:
		return "spec.storage.controlPlaneSize"
	case VolumeContent:
		return "spec.storage.contentSize"
	}
	return "spec.storage." + template + "Size"
}
