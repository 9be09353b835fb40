// Package testenv starts a real kube-apiserver and etcd (envtest, binaries built by
// hack/build-k8s.sh) and the operator's manager against them.
package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	pgv2 "github.com/percona/percona-postgresql-operator/v2/pkg/apis/pgv2.percona.com/v2"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	charts "github.com/dittofs/dittofs-operator/helm-charts"
	"github.com/dittofs/dittofs-operator/internal/hybrid"
)

// K8sVersion is the version of the test binaries (hack/build-k8s.sh).
const K8sVersion = "v1.35.4"

// RepoRoot is the repository root.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Env is a running API server.
type Env struct {
	Env    *envtest.Environment
	Config *rest.Config
	Client client.Client
	Scheme *k8sruntime.Scheme
}

// Scheme is the operator's scheme.
func Scheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	_ = pgv2.AddToScheme(s)
	return s
}

// Start starts envtest with the project's CRDs (plus extra CRD paths). Call from TestMain.
func Start(extraCRDs ...string) (*Env, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(RepoRoot(), "bin", "k8s", K8sVersion)
	}
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		return nil, fmt.Errorf("no kube-apiserver in %s: run `make k8s-binaries` (hack/build-k8s.sh) first", assets)
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.Level(zapcore.Level(zapLevel()))))
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     append([]string{filepath.Join(RepoRoot(), "config", "crd", "bases")}, extraCRDs...),
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, err
	}
	scheme := Scheme()
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Env{Env: env, Config: cfg, Client: c, Scheme: scheme}, nil
}

// Stop stops the API server.
func (e *Env) Stop() { _ = e.Env.Stop() }

// Manager is a running operator manager.
type Manager struct {
	Manager ctrl.Manager
	// Requests counts every API request the operator makes (watches excluded).
	Requests *RequestCounter
	cancel   context.CancelFunc
	done     chan error
}

// Stop stops the manager and waits for it.
func (m *Manager) Stop(t testing.TB) {
	m.cancel()
	select {
	case err := <-m.done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("manager did not stop within 30s")
	}
}

// StartManager runs the operator (both reconcilers) against the env, as main.go wires it.
func (e *Env) StartManager(t testing.TB, mutate ...func(*hybrid.Options)) *Manager {
	t.Helper()
	watches, err := os.ReadFile(filepath.Join(RepoRoot(), "watches.yaml"))
	require.NoError(t, err)
	cfg := rest.CopyConfig(e.Config)
	cfg.QPS, cfg.Burst = 100, 200
	counter := &RequestCounter{}
	counter.Wrap(cfg)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 e.Scheme,
		Cache:                  hybrid.CacheOptions(nil),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             ctrlConfig(),
	})
	require.NoError(t, err)
	opts := hybrid.Options{
		Watches:                watches,
		Charts:                 charts.FS,
		WaitForDeletionTimeout: 2 * time.Second,
		MaxReleaseHistory:      2,
		// envtest runs no DittoFS server: the REST API step is off unless a test turns it on
		// (test/controlplane points it at a real dfs).
		ControlPlane: hybrid.ControlPlaneOptions{Disabled: true},
	}
	for _, m := range mutate {
		m(&opts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, hybrid.Setup(ctx, mgr, opts))
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return &Manager{Manager: mgr, Requests: counter, cancel: cancel, done: done}
}

// GVK of DittoServer.
var GVK = schema.GroupVersionKind{Group: v1alpha1.GroupVersion.Group, Version: v1alpha1.GroupVersion.Version, Kind: v1alpha1.DittoServerKind}

func zapLevel() int8 {
	if os.Getenv("TEST_VERBOSE") != "" {
		return -1
	}
	return 10 // quiet
}
