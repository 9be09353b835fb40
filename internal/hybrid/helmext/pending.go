package helmext

import (
	"context"
	"errors"
	"fmt"

	helmclient "github.com/operator-framework/helm-operator-plugins/pkg/client"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// WrapActionClients wraps an ActionClientGetter so that a release left pending-* is recovered,
// swaps in the cache-backed drift repair (drift.go), and counts failed actions (metrics.go).
//
// An operator killed during an install or upgrade (or one that lost the API server before it
// could record the result) leaves its release pending-* and Helm refuses every later operation
// ("another operation is in progress", helm-operator-plugins issue #94). A pending release seen
// when a reconcile starts is never in flight: the workqueue runs one reconcile of a DittoServer
// at a time, an install or upgrade finishes inside its reconcile, and only the leader writes
// releases. So it is recovered whenever it is found — left by a previous process, by a leader
// that lost its lease, or by this process when the API server went away mid-action:
//
//   - the live objects are first brought back to the manifest the next upgrade diffs against
//     (the last deployed revision; for a pending install, the install itself), so the upgrade's
//     three-way merge starts from what is live: a Service port changed meanwhile is replaced,
//     not added next to the old one, and objects the new manifest drops are deleted;
//   - the pending revision is then marked failed, and the next reconcile upgrades from it.
func WrapActionClients(inner helmclient.ActionClientGetter, c client.Client) helmclient.ActionClientGetter {
	return helmclient.ActionClientGetterFunc(func(ctx context.Context, obj client.Object) (helmclient.ActionInterface, error) {
		inner, err := inner.ActionClientFor(ctx, obj)
		if err != nil {
			return nil, err
		}
		ac := &driftRepairingClient{ActionInterface: inner, ctx: ctx, client: c}
		rel, err := ac.Get(obj.GetName())
		if err != nil || rel.Info == nil || !rel.Info.Status.IsPending() {
			return countingClient{ac}, nil
		}
		if err := recoverPending(ctx, ac, c, obj, rel); err != nil {
			return nil, fmt.Errorf("recovering release %s v%d left %s: %w", rel.Name, rel.Version, rel.Info.Status, err)
		}
		return countingClient{ac}, nil
	})
}

// recoverPending repairs the live objects toward the manifest the next upgrade starts from and
// marks the pending revision failed.
func recoverPending(ctx context.Context, ac helmclient.ActionInterface, c client.Client, obj client.Object, rel *release.Release) error {
	logger := log.FromContext(ctx).WithValues("release", rel.Name, "version", rel.Version, "status", rel.Info.Status)
	storage := ac.Config().Releases
	base, err := storage.Deployed(rel.Name)
	switch {
	case errors.Is(err, driver.ErrNoDeployedReleases) || errors.Is(err, driver.ErrReleaseNotFound):
		base = rel
	case err != nil:
		return err
	}
	// A server being deleted is uninstalled: nothing to bring back.
	if obj.GetDeletionTimestamp().IsZero() {
		if err := RepairDrift(ctx, c, rel.Namespace, base.Manifest); err != nil {
			return err
		}
	}
	was := rel.Info.Status
	rel.Info.Status = release.StatusFailed
	rel.Info.Description = fmt.Sprintf("marked failed by the operator: left %s by an interrupted operation", was)
	if err := storage.Update(rel); err != nil {
		return err
	}
	logger.Info("recovered a release left pending by an interrupted operation; the next reconcile upgrades it",
		"liveObjectsRestoredTo", base.Version)
	return nil
}
