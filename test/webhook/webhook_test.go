// Package webhook runs the operator with its validating webhook on a real kube-apiserver.
package webhook

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	charts "github.com/dittofs/dittofs-operator/helm-charts"
	"github.com/dittofs/dittofs-operator/internal/hybrid"
	"github.com/dittofs/dittofs-operator/test/apiserver"
)

// warnings collects the admission warnings the API server returns.
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

func TestValidatingWebhook(t *testing.T) {
	assets := filepath.Join(apiserver.RepoRoot(), "bin", "k8s", apiserver.K8sVersion)
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		t.Skip("no test binaries: run make k8s-binaries")
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(apiserver.RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			Paths: []string{filepath.Join(apiserver.RepoRoot(), "config", "webhook")},
		},
	}
	cfg, err := env.Start()
	require.NoError(t, err)
	defer func() { _ = env.Stop() }()

	scheme := apiserver.Scheme()
	wo := env.WebhookInstallOptions
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  hybrid.CacheOptions(nil),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: wo.LocalServingHost, Port: wo.LocalServingPort, CertDir: wo.LocalServingCertDir,
		}),
	})
	require.NoError(t, err)
	watches, err := os.ReadFile(filepath.Join(apiserver.RepoRoot(), "watches.yaml"))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.NoError(t, hybrid.Setup(ctx, mgr, hybrid.Options{
		Watches: watches, Charts: charts.FS, EnableWebhook: true,
		WaitForDeletionTimeout: 2 * time.Second, MaxReleaseHistory: 2,
	}))
	go func() { _ = mgr.Start(ctx) }()

	w := &warnings{}
	ccfg := rest.CopyConfig(cfg)
	ccfg.WarningHandler = w
	c, err := client.New(ccfg, client.Options{Scheme: scheme})
	require.NoError(t, err)

	// Wait for the webhook server.
	ns := "wh"
	require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	probe := func(name string) *v1alpha1.DittoServer {
		return &v1alpha1.DittoServer{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       v1alpha1.DittoServerSpec{Storage: v1alpha1.StorageSpec{MetadataSize: "1Gi"}},
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err = c.Create(ctx, probe("probe"), client.DryRunAll)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, err, "webhook server not reachable")
	w.take()

	require.NoError(t, c.Create(ctx, &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "present"}, Provisioner: "kubernetes.io/host-path"}))
	require.NoError(t, c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "short-jwt", Namespace: ns},
		StringData: map[string]string{"secret": "too-short-jwt"}}))
	require.NoError(t, c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "backup-no-key", Namespace: ns},
		StringData: map[string]string{"s3.conf": "[global]\nrepo1-s3-uri-style=path\n"}}))

	jwtRef := func(name, key string) *v1alpha1.IdentitySpec {
		return &v1alpha1.IdentitySpec{JWT: &v1alpha1.JWTSpec{SecretRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}}}
	}
	cases := []struct {
		name         string
		mutate       func(*v1alpha1.DittoServerSpec)
		wantErr      []string
		wantWarnings []string
	}{
		{
			name:    "StorageClass missing",
			mutate:  func(s *v1alpha1.DittoServerSpec) { s.Storage.StorageClassName = ptr.To("nope") },
			wantErr: []string{"spec.storage.storageClassName", `StorageClass "nope" does not exist`},
		},
		{
			name: "Percona StorageClass missing and CRD not installed",
			mutate: func(s *v1alpha1.DittoServerSpec) {
				s.Percona = &v1alpha1.PerconaSpec{Enabled: true, StorageClassName: ptr.To("nope-pg")}
			},
			wantErr: []string{"spec.percona.storageClassName", "Percona PostgreSQL operator is not installed"},
		},
		{
			name: "chartValues that change what the server depends on",
			mutate: func(s *v1alpha1.DittoServerSpec) {
				s.ChartValues = &apiextensionsv1.JSON{Raw: []byte(`{"config":{"controlplane":{"port":9999}}}`)}
			},
			wantErr: []string{"spec.chartValues.config.controlplane.port", "may not be set here", "spec.controlPlane.port"},
		},
		{
			name: "chartValues the chart's schema refuses",
			mutate: func(s *v1alpha1.DittoServerSpec) {
				s.ChartValues = &apiextensionsv1.JSON{Raw: []byte(`{"ports":{"nfs":70000}}`)}
			},
			wantErr: []string{"spec.chartValues", "values.schema.json"},
		},
		{
			name: "backup credentials without the S3 key",
			mutate: func(s *v1alpha1.DittoServerSpec) {
				s.Percona = &v1alpha1.PerconaSpec{Enabled: true, Backup: &v1alpha1.PerconaBackupSpec{Enabled: true, Bucket: "b", Endpoint: "s3.example.com",
					CredentialsSecretRef: &corev1.LocalObjectReference{Name: "backup-no-key"}}}
			},
			wantErr: []string{"spec.percona.backup.credentialsSecretRef", "Secret backup-no-key has no pgBackRest S3 key"},
		},
		{
			name: "a privileged container",
			mutate: func(s *v1alpha1.DittoServerSpec) {
				s.SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true), Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}}}
				s.PodSecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr.To(int64(0))}
			},
			wantErr: []string{"spec.securityContext.privileged", "spec.securityContext.capabilities.add", "SYS_ADMIN", "spec.podSecurityContext.runAsUser", `Pod Security "restricted"`},
		},
		{
			name: "pod labels, annotations and env the operator owns",
			mutate: func(s *v1alpha1.DittoServerSpec) {
				s.PodLabels = map[string]string{"app.kubernetes.io/instance": "other"}
				s.PodAnnotations = map[string]string{"dittofs.dittofs.com/config-hash": "x"}
				s.Env = []corev1.EnvVar{{Name: "DITTOFS_CONTROLPLANE_PORT", Value: "1"}}
			},
			wantErr: []string{"spec.podLabels", "app.kubernetes.io/instance", "spec.podAnnotations", "spec.env[0].name", "DITTOFS_CONTROLPLANE_PORT", "spec.chartValues.config"},
		},
		{
			name:         "existing StorageClass is fine",
			mutate:       func(s *v1alpha1.DittoServerSpec) { s.Storage.StorageClassName = ptr.To("present") },
			wantWarnings: nil,
		},
		{
			name:         "referenced Secret missing is only a warning",
			mutate:       func(s *v1alpha1.DittoServerSpec) { s.Identity = jwtRef("later", "secret") },
			wantWarnings: []string{"spec.identity.jwt.secretRef: Secret later does not exist yet"},
		},
		{
			name:         "short JWT secret is a warning that never echoes the value",
			mutate:       func(s *v1alpha1.DittoServerSpec) { s.Identity = jwtRef("short-jwt", "secret") },
			wantWarnings: []string{"fewer than 32 characters"},
		},
		{
			name: "privileged API port",
			mutate: func(s *v1alpha1.DittoServerSpec) {
				s.ControlPlane = &v1alpha1.ControlPlaneSpec{Port: 80}
			},
			wantWarnings: []string{"spec.controlPlane.port is 80, below 1024"},
		},
		{
			name: "seed fields without effect",
			mutate: func(s *v1alpha1.DittoServerSpec) {
				s.Cache = &v1alpha1.CacheSpec{}
				s.SMB = &v1alpha1.SMBSpec{Enabled: true, MaxRequestsPerConnection: ptr.To(int32(10))}
			},
			wantWarnings: []string{"spec.cache has no effect", "spec.smb.maxRequestsPerConnection has no effect"},
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ds := probe(fmt.Sprintf("case-%d", i))
			tc.mutate(&ds.Spec)
			err := c.Create(ctx, ds)
			got := w.take()
			if len(tc.wantErr) > 0 {
				require.Error(t, err)
				for _, want := range tc.wantErr {
					assert.Contains(t, err.Error(), want)
				}
				return
			}
			require.NoError(t, err)
			for _, want := range tc.wantWarnings {
				found := false
				for _, g := range got {
					found = found || strings.Contains(g, want)
				}
				assert.True(t, found, "warning %q not in %v", want, got)
			}
			for _, g := range got {
				assert.NotContains(t, g, "too-short-jwt", "a Secret's value must never be echoed")
			}
			if tc.wantWarnings == nil {
				assert.Empty(t, got)
			}
		})
	}
}
