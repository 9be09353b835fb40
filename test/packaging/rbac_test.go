package packaging

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

// operatorNamespace and operatorAccount are where config/default and its overlays install the
// operator, and the user its requests are made as.
const (
	operatorNamespace = "dittofs-operator-system"
	operatorAccount   = "system:serviceaccount:" + operatorNamespace + ":dittofs-operator-controller-manager"
)

// rbacKinds are what an install applies for the operator's identity and rights.
var rbacKinds = map[string]bool{"Namespace": true, "ServiceAccount": true, "Role": true, "RoleBinding": true, "ClusterRole": true, "ClusterRoleBinding": true}

// TestRBACPerInstallMode: the operator runs as its ServiceAccount with exactly the RBAC an
// install mode applies, converges a server, records its events and deletes it; the namespaced
// install cannot read a Secret outside its namespace, the cluster-wide one can.
func TestRBACPerInstallMode(t *testing.T) {
	for _, mode := range []struct {
		overlay    string
		namespaced bool
	}{
		{overlay: "config/default"},
		{overlay: "config/overlays/namespaced", namespaced: true},
	} {
		t.Run(mode.overlay, func(t *testing.T) {
			applyRBAC(t, kustomizeBuild(t, mode.overlay))
			ns := operatorNamespace
			mc := testenv.ManagerConfig{Impersonate: operatorAccount, Namespaces: []string{operatorNamespace}}
			if !mode.namespaced {
				ns = fmt.Sprintf("rbac-%d", time.Now().UnixNano()%100000)
				require.NoError(t, env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
				mc.Namespaces = nil
			}
			mgr := env.StartManagerWith(t, mc)
			defer mgr.Stop(t)
			convergeAndDelete(t, ns, "rbac-"+map[bool]string{false: "cluster", true: "own"}[mode.namespaced])

			for _, other := range []string{"default", ns} {
				allowed := canGetSecrets(t, other)
				switch {
				case other == ns:
					assert.True(t, allowed, "the operator reads Secrets where it works")
				case mode.namespaced:
					assert.False(t, allowed, "a namespaced install reads no Secret outside %s", operatorNamespace)
				default:
					assert.True(t, allowed, "a cluster-wide install reads Secrets in every namespace")
				}
			}
		})
	}
}

// applyRBAC creates the install's identity and rights, and deletes them (but the namespace)
// when the test ends, so that the next mode starts from none.
func applyRBAC(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	for _, o := range objs {
		if !rbacKinds[o.GetKind()] {
			continue
		}
		obj := o.DeepCopy()
		err := env.Client.Create(ctx, obj)
		if o.GetKind() == "Namespace" && apierrors.IsAlreadyExists(err) {
			continue
		}
		require.NoError(t, err, "%s %s", o.GetKind(), o.GetName())
		if o.GetKind() != "Namespace" {
			t.Cleanup(func() { _ = env.Client.Delete(ctx, obj) })
		}
	}
}

// convergeAndDelete creates a server as a user would (generated credentials), plays the
// StatefulSet controller, waits for Ready and for an event, then deletes it and waits for it
// to go: every object kind the operator writes is written, as the operator's account.
func convergeAndDelete(t *testing.T, ns, name string) {
	t.Helper()
	ctx := context.Background()
	ds := &v1alpha1.DittoServer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.DittoServerSpec{
			Storage: v1alpha1.StorageSpec{MetadataSize: "1Gi", ContentSize: "1Gi", DeleteWithServer: true},
			Metrics: &v1alpha1.MetricsSpec{Enabled: ptr.To(true)},
		},
	}
	require.NoError(t, env.Client.Create(ctx, ds))
	testenv.GetStatefulSet(t, env.Client, ns, name)
	testenv.MarkStatefulSetReady(t, env.Client, ns, name)
	testenv.WaitCondition(t, env.Client, ns, name, specs.ConditionReady, metav1.ConditionTrue, "")
	for _, obj := range []client.Object{&corev1.Secret{}, &corev1.Service{}} {
		key := client.ObjectKey{Namespace: ns, Name: name + "-admin-credentials"}
		if _, svc := obj.(*corev1.Service); svc {
			key.Name = name + "-metrics"
		}
		require.NoError(t, env.Client.Get(ctx, key, obj), "%T %s", obj, key.Name)
	}
	testenv.Eventually(t, "an event recorded on the server", func() error {
		evs := &corev1.EventList{}
		if err := env.Client.List(ctx, evs, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, ev := range evs.Items {
			if ev.InvolvedObject.Kind == v1alpha1.DittoServerKind && ev.InvolvedObject.Name == name {
				return nil
			}
		}
		return fmt.Errorf("no event about %s among %d", name, len(evs.Items))
	})
	require.NoError(t, env.Client.Delete(ctx, testenv.GetServer(t, env.Client, ns, name)))
	testenv.WaitGone(t, env.Client, ns, name)
	err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name + "-admin-credentials"}, &corev1.Secret{})
	assert.True(t, apierrors.IsNotFound(err), "deleteWithServer deleted the generated credentials: %v", err)
}

// canGetSecrets asks the API server whether the operator's account may read Secrets in ns.
func canGetSecrets(t *testing.T, ns string) bool {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   operatorAccount,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + operatorNamespace, "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: ns, Verb: "get", Resource: "secrets",
		},
	}}
	require.NoError(t, env.Client.Create(context.Background(), sar))
	return sar.Status.Allowed
}
