// Package integration runs the operator against a real kube-apiserver (envtest).
package integration

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

var (
	env *testenv.Env
	k8s client.Client
	nsN atomic.Int32
)

func TestMain(m *testing.M) {
	var err error
	start := time.Now()
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "envtest:", err)
		os.Exit(1)
	}
	fmt.Printf("envtest started in %s\n", time.Since(start).Round(time.Millisecond))
	k8s = env.Client
	code := m.Run()
	env.Stop()
	os.Exit(code)
}

func ctx() context.Context { return context.Background() }

// newNamespace creates a fresh namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%d", nsN.Add(1), time.Now().UnixNano()%100000)
	require.NoError(t, k8s.Create(ctx(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}))
	return name
}

// userSecrets creates the JWT and admin Secrets basicServer references (the user's own).
func userSecrets(t *testing.T, ns string) {
	t.Helper()
	require.NoError(t, k8s.Create(ctx(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "dittofs-jwt-secret", Namespace: ns},
		StringData: map[string]string{"secret": "integration-jwt-secret-0123456789abcdef"},
	}))
	require.NoError(t, k8s.Create(ctx(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "dittofs-admin-secret", Namespace: ns},
		StringData: map[string]string{"password": "integration-admin-password"},
	}))
}

// basicServer mirrors config/samples/dittofs_v1alpha1_dittoserver.yaml, with the user's own
// Secrets (userSecrets) in spec.identity.
func basicServer(ns, name string) *v1alpha1.DittoServer {
	return &v1alpha1.DittoServer{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.DittoServerSpec{
			Storage: v1alpha1.StorageSpec{MetadataSize: "10Gi", ContentSize: "50Gi"},
			Identity: &v1alpha1.IdentitySpec{
				JWT: &v1alpha1.JWTSpec{SecretRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "dittofs-jwt-secret"}, Key: "secret"}},
				Admin: &v1alpha1.AdminSpec{PasswordSecretRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "dittofs-admin-secret"}, Key: "password"}},
			},
		},
	}
}

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	testenv.Eventually(t, what, f)
}

func getServer(t *testing.T, ns, name string) *v1alpha1.DittoServer {
	t.Helper()
	return testenv.GetServer(t, k8s, ns, name)
}

func condition(ds *v1alpha1.DittoServer, t string) *metav1.Condition { return testenv.Condition(ds, t) }

func waitCondition(t *testing.T, ns, name, condType string, status metav1.ConditionStatus, reason string) *v1alpha1.DittoServer {
	t.Helper()
	return testenv.WaitCondition(t, k8s, ns, name, condType, status, reason)
}

func getStatefulSet(t *testing.T, ns, name string) *appsv1.StatefulSet {
	t.Helper()
	return testenv.GetStatefulSet(t, k8s, ns, name)
}

func markStatefulSetReady(t *testing.T, ns, name string) {
	t.Helper()
	testenv.MarkStatefulSetReady(t, k8s, ns, name)
}

func configHash(t *testing.T, ns, name string) string {
	t.Helper()
	return getStatefulSet(t, ns, name).Spec.Template.Annotations[specs.AnnotationConfigHash]
}

func clientKey(o client.Object) client.ObjectKey { return client.ObjectKeyFromObject(o) }

func ignoreNotFound(err error) error { return client.IgnoreNotFound(err) }

func updateServer(t *testing.T, ns, name string, mutate func(*v1alpha1.DittoServer)) *v1alpha1.DittoServer {
	t.Helper()
	return testenv.UpdateServer(t, k8s, ns, name, mutate)
}
