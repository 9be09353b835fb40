package controlplane

import (
	"cmp"
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/dittoapi"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// desiredShares is spec.shares, or the default share when unset. An empty DefaultPermission
// means "as created": specs.DefaultSharePermission for a new share, left alone on one that
// exists.
func desiredShares(ds *v1alpha1.DittoServer) []v1alpha1.ShareSpec {
	if ds.Spec.Shares == nil {
		return []v1alpha1.ShareSpec{{Name: specs.DefaultShareName}}
	}
	return append([]v1alpha1.ShareSpec{}, ds.Spec.Shares...)
}

// applyShares converges the declared shares with one list call in steady state: missing ones
// are created (with the default metadata and local stores, and the S3 store when
// configured), read-only and default permission are updated, and with spec.pruneShares the
// shares the operator created and the spec no longer lists are deleted. Shares the operator
// did not create are never touched. The names the operator created are kept in an
// annotation of its Secret.
func (r *run) applyShares(ctx context.Context, remote string) error {
	ds, c := r.ds, r.api
	list, err := c.ListShares(ctx)
	if err != nil {
		return err
	}
	have := map[string]dittoapi.Share{}
	for _, s := range list {
		have[s.Name] = s
	}
	managed := splitNames(r.secret.Annotations[specs.AnnotationManagedShares])
	wantNames := map[string]bool{}
	storesReady := false
	for _, want := range desiredShares(ds) {
		wantNames[want.Name] = true
		cur, ok := have[want.Name]
		if !ok {
			if !storesReady {
				if err := r.ensureShareStores(ctx); err != nil {
					return err
				}
				storesReady = true
			}
			req := dittoapi.CreateShareRequest{
				Name: want.Name, MetadataStoreID: specs.DefaultMetadataStoreName, LocalBlockStore: specs.DefaultLocalStoreName,
				ReadOnly: want.ReadOnly, DefaultPermission: cmp.Or(want.DefaultPermission, specs.DefaultSharePermission),
			}
			if remote != "" {
				req.RemoteBlockStore = &remote
			}
			if _, err := c.CreateShare(ctx, req); err != nil && !dittoapi.IsConflict(err) {
				return fmt.Errorf("creating share %s: %w", want.Name, err)
			}
			managed[want.Name] = true
			r.deps.Recorder.Eventf(ds, corev1.EventTypeNormal, specs.EventShareCreated, "Created share %s (metadata store %s, local block store %s, remote block store %q, %s for users without a grant)",
				want.Name, specs.DefaultMetadataStoreName, specs.DefaultLocalStoreName, remote, req.DefaultPermission)
			continue
		}
		upd := dittoapi.UpdateShareRequest{}
		changed := false
		if cur.ReadOnly != want.ReadOnly {
			upd.ReadOnly, changed = &want.ReadOnly, true
		}
		if want.DefaultPermission != "" && cur.DefaultPermission != want.DefaultPermission {
			upd.DefaultPermission, changed = &want.DefaultPermission, true
		}
		// spec.s3 added later: attach the store to a share that has none. A share already on
		// a remote store is left on it (the operator does not move data between stores).
		if remote != "" && (cur.RemoteBlockStoreID == nil || *cur.RemoteBlockStoreID == "") {
			upd.RemoteBlockStoreID, changed = &remote, true
		}
		if !changed {
			continue
		}
		if _, err := c.UpdateShare(ctx, want.Name, upd); err != nil {
			return fmt.Errorf("updating share %s: %w", want.Name, err)
		}
		r.deps.Recorder.Eventf(ds, corev1.EventTypeNormal, specs.EventShareUpdated, "Updated share %s from spec.shares", want.Name)
	}
	if ds.Spec.PruneShares {
		for name := range managed {
			if wantNames[name] {
				continue
			}
			if _, exists := have[name]; exists {
				if err := c.DeleteShare(ctx, name); err != nil && !dittoapi.IsNotFound(err) {
					return fmt.Errorf("deleting share %s (spec.pruneShares): %w", name, err)
				}
				r.deps.Recorder.Eventf(ds, corev1.EventTypeNormal, specs.EventShareDeleted, "Deleted share %s: no longer in spec.shares and spec.pruneShares is true", name)
			}
			delete(managed, name)
		}
	}
	if joined := joinNames(managed); joined != r.secret.Annotations[specs.AnnotationManagedShares] {
		return r.writeSecret(ctx, nil, map[string]string{specs.AnnotationManagedShares: joined})
	}
	return nil
}

// ensureShareStores creates the default metadata and local block stores when missing.
func (r *run) ensureShareStores(ctx context.Context) error {
	ds, c := r.ds, r.api
	if _, err := c.GetMetadataStore(ctx, specs.DefaultMetadataStoreName); dittoapi.IsNotFound(err) {
		if _, err := c.CreateMetadataStore(ctx, specs.DefaultMetadataStoreName, "badger",
			map[string]any{"path": r.podPath(ds, specs.MetadataMountPath+"/"+specs.DefaultMetadataStoreName)}); err != nil && !dittoapi.IsConflict(err) {
			return fmt.Errorf("creating metadata store %s: %w", specs.DefaultMetadataStoreName, err)
		}
		r.deps.Recorder.Eventf(ds, corev1.EventTypeNormal, specs.EventStoreCreated, "Created metadata store %s (badger on the metadata volume)", specs.DefaultMetadataStoreName)
	} else if err != nil {
		return err
	}
	if _, err := c.GetBlockStore(ctx, dittoapi.BlockLocal, specs.DefaultLocalStoreName); dittoapi.IsNotFound(err) {
		volume := specs.StoreVolume(ds, r.volumes)
		maxSize, err := specs.LocalStoreMaxSize(specs.VolumeSize(ds, volume))
		if err != nil {
			return err
		}
		if _, err := c.CreateBlockStore(ctx, dittoapi.BlockLocal, specs.DefaultLocalStoreName, "fs",
			map[string]any{"path": r.podPath(ds, specs.LocalStorePath(volume)), "max_size": maxSize}); err != nil && !dittoapi.IsConflict(err) {
			return fmt.Errorf("creating local block store %s: %w", specs.DefaultLocalStoreName, err)
		}
		r.deps.Recorder.Eventf(ds, corev1.EventTypeNormal, specs.EventStoreCreated, "Created local block store %s (fs on the %s volume, up to %d bytes)",
			specs.DefaultLocalStoreName, volume, maxSize)
	} else if err != nil {
		return err
	}
	return nil
}

// applyLocalStoreSize keeps the local block store's max_size at 90% of the volume it is on:
// set at creation, raised when the volume grows, and set once on stores made before (DittoFS
// otherwise caps a local-only store at a quarter of the pod's memory, and the cache in front of
// S3 at 10 GiB, whatever the volume). A running share keeps the store it built at start, so an
// update restarts the pod once (as for the S3 store). Steady state costs no call: the operator
// Secret records the volume and size last applied. It returns the volume the store is on.
func (r *run) applyLocalStoreSize(ctx context.Context) (string, error) {
	ds, c := r.ds, r.api
	volume, applied, _ := strings.Cut(r.secret.Annotations[specs.AnnotationLocalStore], ":")
	if volume == localStoreElsewhere {
		return "", nil
	}
	if volume != "" {
		if want, err := specs.LocalStoreMaxSize(specs.VolumeSize(ds, volume)); err == nil && applied == strconv.FormatInt(want, 10) {
			return volume, nil
		}
	}
	store, err := c.GetBlockStore(ctx, dittoapi.BlockLocal, specs.DefaultLocalStoreName)
	if dittoapi.IsNotFound(err) {
		return "", nil // made with the first share
	}
	if err != nil {
		return "", err
	}
	cfg := store.ConfigMap()
	path, _ := cfg["path"].(string)
	volume = specs.VolumeOfPath(path)
	if volume == "" || specs.VolumeSize(ds, volume) == "" {
		// Not on a volume of the pod (made with dfsctl): not the operator's to size.
		return "", r.writeSecret(ctx, nil, map[string]string{specs.AnnotationLocalStore: localStoreElsewhere})
	}
	want, err := specs.LocalStoreMaxSize(specs.VolumeSize(ds, volume))
	if err != nil {
		return "", err
	}
	ann := map[string]string{specs.AnnotationLocalStore: volume + ":" + strconv.FormatInt(want, 10)}
	if have, _ := cfg["max_size"].(float64); int64(have) != want {
		cfg["max_size"] = want
		if _, err := c.UpdateBlockStore(ctx, dittoapi.BlockLocal, specs.DefaultLocalStoreName, store.Type, cfg); err != nil {
			return "", fmt.Errorf("sizing local block store %s: %w", specs.DefaultLocalStoreName, err)
		}
		ann[specs.AnnotationRemoteStoreUpdated] = time.Now().UTC().Format(time.RFC3339Nano)
		r.deps.Recorder.Eventf(ds, corev1.EventTypeNormal, specs.EventStoreUpdated,
			"Local block store %s may use up to %d bytes of the %s volume (it had %d); the pod restarts to load it", specs.DefaultLocalStoreName, want, volume, int64(have))
	}
	return volume, r.writeSecret(ctx, nil, ann)
}

// localStoreElsewhere records a local store the operator does not size.
const localStoreElsewhere = "elsewhere"

func splitNames(s string) map[string]bool {
	out := map[string]bool{}
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out[n] = true
		}
	}
	return out
}

func joinNames(m map[string]bool) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}
