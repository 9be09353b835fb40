package integration

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// Secrets the server cannot boot with are reported (Secret and key named, value never shown)
// and no pod that would crash is rolled out.
func TestBadSecretsAreReportedNotRolledOut(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)

	cases := map[string]struct {
		secret    *corev1.Secret
		mutate    func(*v1alpha1.DittoServer)
		value     string
		wantInMsg []string
	}{
		"JWT shorter than 32 characters": {
			secret: &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "dittofs-jwt-secret"},
				StringData: map[string]string{"secret": "short-jwt-value"}},
			value:     "short-jwt-value",
			wantInMsg: []string{"dittofs-jwt-secret", `"secret"`, "fewer than 32 characters"},
		},
		"admin Secret with an empty key": {
			secret: &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "dittofs-admin-secret"},
				StringData: map[string]string{"password": ""}},
			wantInMsg: []string{"dittofs-admin-secret", `"password"`, "is empty"},
		},
		"PostgreSQL URI that does not parse": {
			secret: &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pg"},
				StringData: map[string]string{"uri": "postgres://dittofs:Sup3rSecret@db:port/dittofs"}},
			mutate: func(ds *v1alpha1.DittoServer) {
				ds.Spec.Database = &v1alpha1.DatabaseSpec{Type: "postgres", PostgresSecretRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "pg"}, Key: "uri"}}
			},
			value:     "Sup3rSecret",
			wantInMsg: []string{"Secret pg", `"uri"`, "not a PostgreSQL URI"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ns := newNamespace(t)
			userSecrets(t, ns)
			tc.secret.Namespace = ns
			if err := k8s.Create(ctx(), tc.secret); apierrors.IsAlreadyExists(err) {
				require.NoError(t, k8s.Update(ctx(), tc.secret))
			} else {
				require.NoError(t, err)
			}
			ds := basicServer(ns, "bad")
			if tc.mutate != nil {
				tc.mutate(ds)
			}
			require.NoError(t, k8s.Create(ctx(), ds))
			got := waitCondition(t, ns, "bad", specs.ConditionReady, metav1.ConditionFalse, specs.ReasonSecretInvalid)
			msg := condition(got, specs.ConditionReady).Message
			for _, w := range tc.wantInMsg {
				assert.Contains(t, msg, w)
			}
			if tc.value != "" {
				assert.NotContains(t, msg, tc.value, "a Secret's value must never be shown")
			}
			assert.Equal(t, v1alpha1.PhaseFailed, got.Status.Phase)
			err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "bad"}, &appsv1.StatefulSet{})
			assert.True(t, apierrors.IsNotFound(err), "no pod that would crash is rolled out")
		})
	}

	t.Run("a running server keeps its pod when its JWT Secret turns bad", func(t *testing.T) {
		ns := newNamespace(t)
		userSecrets(t, ns)
		require.NoError(t, k8s.Create(ctx(), basicServer(ns, "running")))
		markStatefulSetReady(t, ns, "running")
		waitCondition(t, ns, "running", specs.ConditionReady, metav1.ConditionTrue, "")
		hash := configHash(t, ns, "running")
		s := &corev1.Secret{}
		require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "dittofs-jwt-secret"}, s))
		s.Data["secret"] = []byte("tiny")
		require.NoError(t, k8s.Update(ctx(), s))
		waitCondition(t, ns, "running", specs.ConditionReady, metav1.ConditionFalse, specs.ReasonSecretInvalid)
		assert.Equal(t, hash, configHash(t, ns, "running"), "the running pod keeps its configuration")
	})
}
