// Command manager runs the DittoFS operator: a helm-operator-plugins reconciler renders the
// stateless objects of each DittoServer from the embedded chart, and a Go controller owns the
// Secrets, the StatefulSet and the status.
package main

import (
	"cmp"
	_ "embed"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	pgv2 "github.com/percona/percona-postgresql-operator/v2/pkg/apis/pgv2.percona.com/v2"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/yaml"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	charts "github.com/dittofs/dittofs-operator/helm-charts"
	"github.com/dittofs/dittofs-operator/internal/controlplane"
	"github.com/dittofs/dittofs-operator/internal/hybrid"
	"github.com/dittofs/dittofs-operator/internal/metricsauth"
)

//go:embed watches.yaml
var watchesYAML []byte

// The operator's cluster-scoped role (ClusterRole manager-cluster-role, generated from the
// markers of this package; every namespaced rule is in internal/, ClusterRole manager-role,
// which an install binds cluster-wide or in the watched namespaces only):
//   - tokenreviews, subjectaccessreviews: the metrics endpoint authenticates and authorizes its
//     callers (internal/metricsauth);
//   - storageclasses: whether a volume's class can expand (validation, volume growth);
//   - the PerconaPGCluster CRD (by name only): its appearance starts the Percona watch.
//
// Leader election needs Leases only in the operator's namespace:
// config/rbac/leader_election_role.yaml (a Role; in the bundle, the CSV's namespaced permissions).
//
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// +kubebuilder:rbac:groups=storage.k8s.io,resources=storageclasses,verbs=get;list;watch
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch,resourceNames=perconapgclusters.pgv2.percona.com

func main() {
	var o runOptions
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", "address of the metrics endpoint (\"0\" disables it)")
	flag.BoolVar(&o.secureMetrics, "metrics-secure", true, "serve metrics over HTTPS with Kubernetes authn/authz")
	flag.StringVar(&o.metricsCertDir, "metrics-cert-dir", "", "directory with the metrics endpoint's serving certificate and key (reloaded when they change); empty: a self-signed certificate")
	flag.StringVar(&o.metricsCertName, "metrics-cert-name", "tls.crt", "certificate file in --metrics-cert-dir")
	flag.StringVar(&o.metricsCertKey, "metrics-cert-key", "tls.key", "key file in --metrics-cert-dir")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints")
	flag.StringVar(&o.pprofAddr, "pprof-bind-address", "0", "address of Go's /debug/pprof endpoints, unauthenticated: bind it to 127.0.0.1 (\"0\" disables them; make bench profiles the operator through it)")
	flag.BoolVar(&o.leaderElect, "leader-elect", false, "enable leader election (required with more than one replica)")
	flag.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader-election Lease (empty: the operator's own namespace, read in-cluster; required out of cluster with --leader-elect)")
	flag.StringVar(&o.operatorNamespace, "operator-namespace", inClusterNamespace(), "the operator's namespace, which each server's NetworkPolicy lets reach the DittoFS API and metrics (default: the pod's own namespace in-cluster; empty out of cluster)")
	flag.StringVar(&o.watchesFile, "watches-file", "", "watches.yaml to use instead of the embedded one (charts still come from the binary)")
	flag.StringVar(&o.overridesFile, "override-values-file", os.Getenv("DITTOFS_OVERRIDE_VALUES_FILE"), "a YAML map of operator-wide override values (spec key: value, as watches.yaml overrideValues), e.g. a mounted ConfigMap's key (env DITTOFS_OVERRIDE_VALUES_FILE); the env DITTOFS_OVERRIDE_VALUES holds the same map inline and wins")
	flag.Float64Var(&o.qps, "kube-api-qps", 50, "client QPS towards the API server")
	flag.IntVar(&o.burst, "kube-api-burst", 100, "client burst towards the API server")
	flag.IntVar(&o.helmWorkers, "helm-max-concurrent-reconciles", 0, "workers of the Helm reconciler (0: watches.yaml value)")
	flag.IntVar(&o.goWorkers, "max-concurrent-reconciles", 2, "workers of the Go controller")
	flag.IntVar(&o.maxHistory, "max-release-history", 2, "Helm release revisions kept per DittoServer")
	flag.DurationVar(&o.waitForDeletion, "wait-for-deletion-timeout", 2*time.Second, "how long a Helm worker waits for a deleted DittoServer to disappear")
	flag.StringVar(&o.webhookCertDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory with tls.crt and tls.key for the validating webhook (OLM mounts them here)")
	flag.StringVar(&o.enableWebhooks, "enable-webhooks", cmp.Or(os.Getenv("ENABLE_WEBHOOKS"), "auto"), "serve the validating webhook: auto (when certificates are present), true, false (env ENABLE_WEBHOOKS)")
	flag.StringVar(&o.clusterDomain, "cluster-domain", cmp.Or(os.Getenv("CLUSTER_DOMAIN"), controlplane.DefaultClusterDomain), "DNS domain of the cluster, for the DittoFS API Service URL <name>-api.<ns>.svc.<domain> (env CLUSTER_DOMAIN)")
	flag.StringVar(&o.apiAddress, "dittofs-api-address", cmp.Or(os.Getenv("DITTOFS_API_ADDRESS"), controlplane.APIAddressService), "how the operator reaches each server's REST API: service (the <name>-api Service's DNS name) or pod-ip (the IP in the pod's status: no cluster DNS needed, e.g. an operator outside the cluster) (env DITTOFS_API_ADDRESS)")
	flag.IntVar(&o.maxRollouts, "max-concurrent-rollouts", 3, "how many servers may restart their pod at once because the operator changed (a new version, operator-wide override values, default images); 0: no bound. A server's own spec or Secret change waits only while its StatefulSet was last written by another operator (docs/UPGRADE.md)")
	flag.DurationVar(&o.rolloutSlotTimeout, "rollout-slot-timeout", hybrid.DefaultRolloutSlotTimeout, "how long a server's rollout holds its slot at most (a pod that never becomes ready does not stop the others for good)")
	flag.BoolVar(&o.manageControlPlane, "manage-control-plane", true, "apply adapters, the S3 store and the default share through the DittoFS REST API (docs/CONTROLPLANE.md)")
	flag.DurationVar(&o.controlPlaneResync, "control-plane-resync", controlplane.DefaultResync, "how often a converged server's adapters, stores and shares are checked for changes made outside the operator (the DittoFS API has no watch)")
	showVersion := flag.Bool("version", false, "print the operator's version and exit")
	zapOpts := zap.Options{Development: false}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	if *showVersion {
		fmt.Println(versionLine())
		return
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := run(o); err != nil {
		ctrl.Log.WithName("setup").Error(err, "operator stopped")
		os.Exit(1)
	}
}

// runOptions are the flags.
type runOptions struct {
	metricsAddr, probeAddr, pprofAddr, watchesFile string
	overridesFile                                  string
	metricsCertDir                                 string
	metricsCertName, metricsCertKey                string
	leaderElectionNamespace                        string
	operatorNamespace                              string
	secureMetrics, leaderElect                     bool
	qps                                            float64
	burst, helmWorkers, goWorkers                  int
	maxHistory                                     int
	waitForDeletion                                time.Duration
	webhookCertDir, enableWebhooks                 string
	clusterDomain, apiAddress                      string
	manageControlPlane                             bool
	controlPlaneResync                             time.Duration
	maxRollouts                                    int
	rolloutSlotTimeout                             time.Duration
}

func run(o runOptions) error {
	if o.apiAddress != controlplane.APIAddressService && o.apiAddress != controlplane.APIAddressPodIP {
		return fmt.Errorf("--dittofs-api-address=%q: want %q or %q", o.apiAddress, controlplane.APIAddressService, controlplane.APIAddressPodIP)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	// PerconaPGCluster (spec.percona): registered even when its CRD is not installed.
	if err := pgv2.AddToScheme(scheme); err != nil {
		return err
	}

	watches := watchesYAML
	if o.watchesFile != "" {
		data, err := os.ReadFile(o.watchesFile)
		if err != nil {
			return err
		}
		watches = data
	}
	namespaces := watchNamespaces()
	overrides, err := overrideValues(o.overridesFile, os.Getenv("DITTOFS_OVERRIDE_VALUES"))
	if err != nil {
		return err
	}

	cfg := ctrl.GetConfigOrDie()
	cfg.QPS, cfg.Burst = float32(o.qps), o.burst

	metricsOpts, err := metricsOptions(o)
	if err != nil {
		return err
	}
	webhooks, err := webhooksEnabled(o.enableWebhooks, o.webhookCertDir)
	if err != nil {
		return err
	}
	setupLog := ctrl.Log.WithName("setup")
	if err := metrics.Registry.Register(buildInfo()); err != nil {
		return err
	}
	memoryLimit := setMemoryLimit()
	setupLog.Info("starting", "version", Version(), "commit", commit(), "watchNamespaces", namespaces, "operatorNamespace", o.operatorNamespace, "webhook", webhooks,
		"goMemoryLimit", memoryLimit)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		WebhookServer:           webhook.NewServer(webhook.Options{CertDir: o.webhookCertDir, Port: 9443}),
		Scheme:                  scheme,
		Cache:                   hybrid.CacheOptions(namespaces),
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  o.probeAddr,
		PprofBindAddress:        o.pprofAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "dittofs-operator.dittofs.com",
		LeaderElectionNamespace: o.leaderElectionNamespace,
	})
	if err != nil {
		return err
	}
	ctx := ctrl.SetupSignalHandler()
	if err := hybrid.Setup(ctx, mgr, hybrid.Options{
		Watches:                watches,
		OverrideValues:         overrides,
		Charts:                 charts.FS,
		Namespaces:             namespaces,
		OperatorNamespace:      o.operatorNamespace,
		HelmConcurrency:        o.helmWorkers,
		GoConcurrency:          o.goWorkers,
		WaitForDeletionTimeout: o.waitForDeletion,
		MaxReleaseHistory:      o.maxHistory,
		EnableWebhook:          webhooks,
		ControlPlane:           controlplane.Options{Disabled: !o.manageControlPlane, APIAddress: o.apiAddress, ClusterDomain: o.clusterDomain, Resync: o.controlPlaneResync},
		Identity:               hybrid.OperatorIdentity(Version()+" "+commit(), watches, overrides),
		MaxConcurrentRollouts:  o.maxRollouts,
		RolloutSlotTimeout:     o.rolloutSlotTimeout,
	}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// overrideValues reads the operator-wide override values: a YAML map from file (a mounted
// ConfigMap key), then the inline YAML map of DITTOFS_OVERRIDE_VALUES, which wins. Keys are
// DittoServer spec paths (strvals syntax), values strings with ${ENV} expanded; whether they
// fit the spec and the chart is checked when the operator starts (hybrid.Setup).
func overrideValues(file, inline string) (map[string]string, error) {
	out := map[string]string{}
	read := func(source string, data []byte) error {
		m := map[string]any{}
		if err := yaml.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("%s: not a YAML map of spec keys to values (e.g. {chartValues.labels.team: storage}): %w", source, err)
		}
		for k, v := range m {
			switch v.(type) {
			case map[string]any, []any:
				return fmt.Errorf("%s: %q: values are strings (use a dotted key for a nested field, e.g. %s.<field>)", source, k, k)
			case nil:
				out[k] = ""
			default:
				out[k] = fmt.Sprint(v)
			}
		}
		return nil
	}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--override-values-file: %w", err)
		}
		if err := read("--override-values-file "+file, data); err != nil {
			return nil, err
		}
	}
	if strings.TrimSpace(inline) != "" {
		if err := read("DITTOFS_OVERRIDE_VALUES", []byte(inline)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// metricsOptions configures the operator's metrics endpoint: HTTPS with Kubernetes authn/authz
// unless --metrics-secure=false, and the certificate of --metrics-cert-dir when given.
// controller-runtime falls back to a self-signed certificate when the files are missing;
// a directory given on purpose without them is an error instead.
func metricsOptions(o runOptions) (metricsserver.Options, error) {
	opts := metricsserver.Options{BindAddress: o.metricsAddr, SecureServing: o.secureMetrics}
	if o.secureMetrics {
		opts.FilterProvider = metricsauth.Filter
	}
	if o.metricsCertDir == "" {
		return opts, nil
	}
	if !o.secureMetrics {
		return opts, fmt.Errorf("--metrics-cert-dir=%s with --metrics-secure=false: the endpoint serves plain HTTP; drop one of them", o.metricsCertDir)
	}
	for _, f := range []string{o.metricsCertName, o.metricsCertKey} {
		if _, err := os.Stat(filepath.Join(o.metricsCertDir, f)); err != nil {
			return opts, fmt.Errorf("--metrics-cert-dir=%s: %w; mount the certificate Secret there (tls.crt, tls.key) or leave the flag out for a self-signed certificate", o.metricsCertDir, err)
		}
	}
	opts.CertDir, opts.CertName, opts.KeyName = o.metricsCertDir, o.metricsCertName, o.metricsCertKey
	return opts, nil
}

// webhooksEnabled decides whether to serve the validating webhook. "auto" serves it only when
// certificates are present, so an install without them (plain kustomize, no cert-manager) runs
// without a webhook instead of crash-looping; the reconciler's guard reports the same checks.
func webhooksEnabled(mode, certDir string) (bool, error) {
	switch strings.ToLower(mode) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "auto", "":
		for _, f := range []string{"tls.crt", "tls.key"} {
			if _, err := os.Stat(filepath.Join(certDir, f)); err != nil {
				return false, nil
			}
		}
		return true, nil
	}
	return false, fmt.Errorf("--enable-webhooks / ENABLE_WEBHOOKS must be auto, true or false, not %q", mode)
}

// watchNamespaces reads WATCH_NAMESPACE: empty means all namespaces, otherwise a
// comma-separated list.
// inClusterNamespace is the namespace of the pod's ServiceAccount ("" out of cluster).
func inClusterNamespace() string {
	b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func watchNamespaces() []string {
	var out []string
	for _, ns := range strings.Split(os.Getenv("WATCH_NAMESPACE"), ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			out = append(out, ns)
		}
	}
	return out
}
