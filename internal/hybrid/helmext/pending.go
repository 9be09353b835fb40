package helmext

import (
	"context"
	"time"

	helmclient "github.com/operator-framework/helm-operator-plugins/pkg/client"
	"helm.sh/helm/v3/pkg/release"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// WrapActionClients wraps an ActionClientGetter. An operator killed during an install or
// upgrade leaves its release pending-* forever and Helm refuses every later operation
// (helm-operator-plugins issue #94). A release that was pending before this process started
// cannot be in flight any more: a pending install is forgotten (the next reconcile installs
// again; the objects it created are adopted), a pending upgrade or rollback is marked failed
// (the next reconcile upgrades again).
//
// It also swaps in the cache-backed drift repair (drift.go).
func WrapActionClients(inner helmclient.ActionClientGetter, started time.Time, c client.Client) helmclient.ActionClientGetter {
	return helmclient.ActionClientGetterFunc(func(ctx context.Context, obj client.Object) (helmclient.ActionInterface, error) {
		inner, err := inner.ActionClientFor(ctx, obj)
		if err != nil {
			return nil, err
		}
		ac := &driftRepairingClient{ActionInterface: inner, ctx: ctx, client: c}
		rel, err := ac.Get(obj.GetName())
		if err != nil || rel.Info == nil || !rel.Info.Status.IsPending() || rel.Info.LastDeployed.Time.After(started) {
			return ac, nil
		}
		logger := log.FromContext(ctx).WithValues("release", rel.Name, "version", rel.Version, "status", rel.Info.Status)
		storage := ac.Config().Releases
		if rel.Info.Status == release.StatusPendingInstall {
			if _, err := storage.Delete(rel.Name, rel.Version); err != nil {
				return nil, err
			}
			logger.Info("forgot a stale pending install left by a previous operator process")
			return ac, nil
		}
		rel.Info.Status = release.StatusFailed
		rel.Info.Description = "marked failed by the operator: pending since before it started"
		if err := storage.Update(rel); err != nil {
			return nil, err
		}
		logger.Info("marked a stale pending release failed")
		return ac, nil
	})
}
