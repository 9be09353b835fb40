package specs

import (
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
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

// Volumes of a server and what each holds: controlplane (the SQLite control-plane database),
// metadata (the metadata store), and one of content or cache for the local block store — the
// files themselves on a server without spec.s3, or the write-through cache in front of the S3
// store. A volume nothing uses is not provisioned.

// StoreVolume is the volume the local block store of a new server goes on, among the mounted
// ones: the cache volume in front of spec.s3, else the content volume when declared, else the
// cache volume. A server whose preferred volume is not mounted (its volume set was fixed
// earlier) uses the other one.
func StoreVolume(ds *v1alpha1.DittoServer, mounted []string) string {
	want, other := VolumeCache, VolumeContent
	if !S3Configured(ds) && ds.Spec.Storage.ContentSize != "" {
		want, other = VolumeContent, VolumeCache
	}
	if mounted != nil && !slices.Contains(mounted, want) && slices.Contains(mounted, other) {
		return other
	}
	return want
}

// PlanVolumes returns the claim templates of a StatefulSet created now: controlplane, metadata,
// the store volume, and every optional volume that already has a PersistentVolumeClaim (data
// kept from before is always mounted again), in a fixed order.
func PlanVolumes(ds *v1alpha1.DittoServer, withClaims []string) []string {
	out := []string{VolumeControlPlane, VolumeMetadata}
	store := StoreVolume(ds, nil)
	for _, v := range []string{VolumeCache, VolumeContent} {
		declared := v == VolumeCache || ds.Spec.Storage.ContentSize != ""
		if v == store || (declared && slices.Contains(withClaims, v)) {
			out = append(out, v)
		}
	}
	return out
}

// VolumeSize is the requested size of a volume in the spec ("" when it has none).
func VolumeSize(ds *v1alpha1.DittoServer, volume string) string {
	d := ds.DeepCopy()
	d.Default()
	switch volume {
	case VolumeControlPlane:
		return d.Spec.Storage.ControlPlaneSize
	case VolumeMetadata:
		return d.Spec.Storage.MetadataSize
	case VolumeCache:
		return d.Spec.Storage.CacheSize
	case VolumeContent:
		return d.Spec.Storage.ContentSize
	}
	return ""
}

// MountPath is where a volume is mounted in the DittoFS container.
func MountPath(volume string) string { return "/data/" + volume }

// LocalStorePath is the directory of the local block store on a volume.
func LocalStorePath(volume string) string { return MountPath(volume) + "/blocks" }

// VolumeOfPath returns the volume a path inside the pod is on ("" when none).
func VolumeOfPath(p string) string {
	for _, v := range []string{VolumeControlPlane, VolumeMetadata, VolumeCache, VolumeContent} {
		if strings.Contains(p+"/", MountPath(v)+"/") {
			return v
		}
	}
	return ""
}

// LocalStoreMaxSize is the max_size of a local block store on a volume of the given size: 90%
// of it, so the store reports a full disk (or evicts, in front of S3) before the volume fills.
// DittoFS's own default is 25% of the pod's memory for a local-only share and 10 GiB in front of
// a remote store, unrelated to the volume.
func LocalStoreMaxSize(volumeSize string) (int64, error) {
	q, err := resource.ParseQuantity(volumeSize)
	if err != nil {
		return 0, fmt.Errorf("volume size %q: %w", volumeSize, err)
	}
	return q.Value() / 10 * 9, nil
}
