// Package apiserver starts a real kube-apiserver and etcd (envtest, binaries built by
// hack/build-k8s.sh) with the project's CRDs. It imports nothing of the operator but its API
// types, so every package's tests can use it; test/testenv adds the operator's manager.
package apiserver

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	pgv2 "github.com/percona/percona-postgresql-operator/v2/pkg/apis/pgv2.percona.com/v2"
	"go.uber.org/zap/zapcore"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// K8sVersion is the version of the test binaries (hack/build-k8s.sh).
const K8sVersion = "v1.35.4"

// DittoFSVersion is the version of the real DittoFS server the tests run
// (bin/dittofs/<version>/dfs, hack/build-dittofs.sh).
const DittoFSVersion = "v0.29.0"

// RepoRoot is the repository root.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Scheme is the operator's scheme.
func Scheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	_ = pgv2.AddToScheme(s)
	return s
}

// Server is a running API server.
type Server struct {
	Env    *envtest.Environment
	Config *rest.Config
	Client client.Client
	Scheme *k8sruntime.Scheme
}

// Start starts envtest with the project's CRDs (plus extra CRD paths). Call from TestMain and
// Stop it before the test binary exits.
func Start(extraCRDs ...string) (*Server, error) {
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
	return &Server{Env: env, Config: cfg, Client: c, Scheme: scheme}, nil
}

// Stop stops the API server.
func (s *Server) Stop() { _ = s.Env.Stop() }

// zapLevel is quiet unless TEST_VERBOSE is set.
func zapLevel() int8 {
	if os.Getenv("TEST_VERBOSE") != "" {
		return -1
	}
	return 10
}
