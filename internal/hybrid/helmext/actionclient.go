package helmext

import (
	"context"
	"fmt"
	"net/http"
	"time"

	helmclient "github.com/operator-framework/helm-operator-plugins/pkg/client"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/kube"
	"helm.sh/helm/v3/pkg/storage/driver"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// NewActionClientGetter builds the Helm action clients of the reconciler, tuned for cost:
//   - Capabilities are computed once at start: Helm would otherwise invalidate its discovery
//     cache and ask the API server for its version and groups on every install, upgrade and
//     dry-run (the chart does not use .Capabilities);
//   - Helm's reads of the chart's objects by name are answered from the manager's cache
//     (cachedgets.go);
//   - release Secrets go through an in-memory write-through cache (releasecache.go) that keeps
//     the releases of charts (the operator's own), and are encoded with reused gzip writers
//     (releasewriter.go);
//   - every Helm action's reachability probe (a GET /version each, three per reconcile) is
//     skipped: the manager's watches already depend on the API server;
//   - client-side OpenAPI validation is off (the API server validates every write anyway), and
//     so is Helm's values.schema.json check, which compiles the schema on every action: the
//     Translator checked the same values against the same schema, compiled once;
//   - the library's owner post-renderer is off: the chart writes the owner reference from the
//     values the Translator sets (it parsed every rendered manifest and serialized it again,
//     6 % of the operator's CPU per new server, and did so again on every dry-run upgrade);
//   - failure rollbacks are off: a failed release is reported, objects are left alone.
func NewActionClientGetter(mgr ctrl.Manager, charts []string) (helmclient.ActionClientGetter, error) {
	cache := newReleaseCache(charts...)
	caps, err := clusterCapabilities(mgr.GetConfig())
	if err != nil {
		return nil, err
	}
	helmCfg := rest.CopyConfig(mgr.GetConfig())
	objects := mgr.GetCache()
	helmCfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &cachedGetTransport{next: rt, cache: objects} })
	core, err := corev1client.NewForConfig(helmCfg)
	if err != nil {
		return nil, fmt.Errorf("release Secrets client: %w", err)
	}
	acg, err := helmclient.NewActionConfigGetter(helmCfg, mgr.GetRESTMapper(),
		helmclient.StorageDriverMapper(func(_ context.Context, obj client.Object, _ *rest.Config) (driver.Driver, error) {
			// As the library's default driver: release Secrets in the object's namespace, owned
			// by it; written by secretWriter (releasewriter.go).
			owner := metav1.NewControllerRef(obj, obj.GetObjectKind().GroupVersionKind())
			secrets := helmclient.NewOwnerRefSecretClient(core.Secrets(obj.GetNamespace()), []metav1.OwnerReference{*owner}, helmclient.MatchAllSecrets)
			return &cachingDriver{inner: driver.NewSecrets(secrets), writer: &secretWriter{secrets: secrets, now: time.Now},
				namespace: obj.GetNamespace(), cache: cache}, nil
		}))
	if err != nil {
		return nil, fmt.Errorf("helm action config: %w", err)
	}
	withCaps := actionConfigGetterFunc(func(ctx context.Context, obj client.Object) (*action.Configuration, error) {
		cfg, err := acg.ActionConfigFor(ctx, obj)
		if err != nil {
			return nil, err
		}
		cfg.Capabilities = caps
		if kc, ok := cfg.KubeClient.(*kube.Client); ok {
			cfg.KubeClient = &reachableKubeClient{Client: kc}
		}
		return cfg, nil
	})
	return helmclient.NewActionClientGetter(withCaps,
		helmclient.WithFailureRollbacks(false),
		helmclient.AppendInstallOptions(func(i *action.Install) error {
			i.DisableOpenAPIValidation, i.SkipSchemaValidation = true, true
			i.PostRenderer = nil
			return nil
		}),
		helmclient.AppendUpgradeOptions(func(u *action.Upgrade) error {
			u.DisableOpenAPIValidation, u.SkipSchemaValidation = true, true
			u.PostRenderer = nil
			return nil
		}),
	)
}

// reachableKubeClient is Helm's kube client without the per-action reachability probe.
type reachableKubeClient struct {
	*kube.Client
}

func (*reachableKubeClient) IsReachable() error { return nil }

type actionConfigGetterFunc func(context.Context, client.Object) (*action.Configuration, error)

func (f actionConfigGetterFunc) ActionConfigFor(ctx context.Context, obj client.Object) (*action.Configuration, error) {
	return f(ctx, obj)
}

// clusterCapabilities asks the API server for its version once.
func clusterCapabilities(cfg *rest.Config) (*chartutil.Capabilities, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	v, err := dc.ServerVersion()
	if err != nil {
		return nil, fmt.Errorf("reading the Kubernetes version: %w", err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = chartutil.KubeVersion{Version: v.GitVersion, Major: v.Major, Minor: v.Minor}
	return caps, nil
}
