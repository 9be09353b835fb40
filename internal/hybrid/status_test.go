package hybrid

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/controlplane"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// TestStatusKey: two computations of the same status differ only in transition times (set to
// now); they must count as the same write, and any other difference must not.
func TestStatusKey(t *testing.T) {
	st := func(ready metav1.ConditionStatus, at time.Time, replicas int32) v1alpha1.DittoServerStatus {
		return v1alpha1.DittoServerStatus{ObservedGeneration: 2, ReadyReplicas: replicas, Conditions: []metav1.Condition{
			{Type: specs.ConditionReady, Status: ready, Reason: specs.ReasonAllReady, LastTransitionTime: metav1.NewTime(at)},
		}}
	}
	now := time.Now()
	a := st(metav1.ConditionTrue, now, 1)
	assert.Equal(t, statusKey(a), statusKey(st(metav1.ConditionTrue, now.Add(time.Second), 1)))
	assert.NotEqual(t, statusKey(a), statusKey(st(metav1.ConditionFalse, now, 1)))
	assert.NotEqual(t, statusKey(a), statusKey(st(metav1.ConditionTrue, now, 0)))
	assert.Equal(t, metav1.NewTime(now), a.Conditions[0].LastTransitionTime, "the status itself is left alone")
}

// statusServer is a server at generation 3 whose Helm release is deployed.
func statusServer(mutate ...func(*v1alpha1.DittoServer)) *v1alpha1.DittoServer {
	ds := &v1alpha1.DittoServer{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "ns", Generation: 3}}
	ds.Spec.Storage.MetadataSize = "1Gi"
	ds.Status.Conditions = []metav1.Condition{{Type: specs.ConditionDeployed, Status: metav1.ConditionTrue, Reason: "InstallSuccessful"}}
	for _, m := range mutate {
		m(ds)
	}
	return ds
}

// readySts is a StatefulSet of want replicas, all rolled out and ready.
func readySts(want int32) *appsv1.StatefulSet {
	sts := &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(want)}}
	sts.Status = appsv1.StatefulSetStatus{Replicas: want, ReadyReplicas: want, UpdatedReplicas: want, AvailableReplicas: want}
	return sts
}

// converged is what a reconcile of a healthy server observes.
func converged() *observed {
	o := &observed{}
	o.configReady("h1")
	o.observeStatefulSet(readySts(1))
	return o
}

// conditionsOf runs one setter on an empty condition list.
func conditionsOf(set func(c conditions)) []metav1.Condition {
	var list []metav1.Condition
	set(conditions{list: &list, generation: 3})
	return list
}

func only(t *testing.T, list []metav1.Condition, typ string) metav1.Condition {
	t.Helper()
	c := meta.FindStatusCondition(list, typ)
	require.NotNil(t, c, "condition %s", typ)
	assert.Equal(t, int64(3), c.ObservedGeneration, "%s carries the generation it describes", typ)
	return *c
}

func TestSetConfigReady(t *testing.T) {
	ds := statusServer()
	cases := map[string]struct {
		cfg    func(o *observed)
		status metav1.ConditionStatus
		reason string
		msg    string
	}{
		"not rendered yet": {func(*observed) {}, metav1.ConditionFalse, specs.ReasonConfigPending, "configuration not rendered yet"},
		"rendered":         {func(o *observed) { o.configReady("h") }, metav1.ConditionTrue, specs.ReasonConfigRendered, "ConfigMap x-config matches the spec"},
		"pending":          {func(o *observed) { o.configPending("waiting") }, metav1.ConditionFalse, specs.ReasonConfigPending, "waiting"},
		"user problem": {func(o *observed) {
			o.configFailed(specs.Problemf(specs.ReasonSecretMissing, "Secret s does not exist"))
		},
			metav1.ConditionFalse, specs.ReasonSecretMissing, "Secret s does not exist"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			o := newObserved(ds)
			tc.cfg(&o)
			c := only(t, conditionsOf(func(c conditions) { setConfigReady(c, ds, o.config) }), specs.ConditionConfigReady)
			assert.Equal(t, tc.status, c.Status)
			assert.Equal(t, tc.reason, c.Reason)
			assert.Equal(t, tc.msg, c.Message)
		})
	}
}

// TestSetImage: status.image (the Image column of kubectl get -o wide) is what the pod template
// runs, and before the StatefulSet exists what the spec asks for.
func TestSetImage(t *testing.T) {
	t.Setenv(specs.EnvRelatedImage, "registry.example/dittofs:mirror")
	withImage := func(image string) *appsv1.StatefulSet {
		sts := readySts(1)
		sts.Spec.Template.Spec.Containers = []corev1.Container{{Name: "sidecar", Image: "other"}, {Name: specs.ContainerName, Image: image}}
		return sts
	}
	pinned := statusServer()
	pinned.Spec.Image = "marmos91c/dittofs:v0.29.0"
	cases := map[string]struct {
		ds   *v1alpha1.DittoServer
		sts  *appsv1.StatefulSet
		want string
	}{
		"no StatefulSet, no spec.image: the operator's default":    {statusServer(), nil, "registry.example/dittofs:mirror"},
		"no StatefulSet, spec.image":                               {pinned, nil, "marmos91c/dittofs:v0.29.0"},
		"the pod template's image (set by hand, not yet put back)": {pinned, withImage("evil/dittofs:latest"), "evil/dittofs:latest"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			st := v1alpha1.DittoServerStatus{}
			setImage(&st, tc.ds, tc.sts)
			assert.Equal(t, tc.want, st.Image)
		})
	}
}

func TestSetDatabaseReady(t *testing.T) {
	list := []metav1.Condition{{Type: specs.ConditionDatabaseReady, Status: metav1.ConditionTrue, Reason: specs.ReasonPerconaReady}}
	setDatabaseReady(conditions{list: &list, generation: 3}, nil)
	assert.Empty(t, list, "a server on SQLite has no DatabaseReady (a stale one goes)")

	c := only(t, conditionsOf(func(c conditions) {
		setDatabaseReady(c, &finding{reason: specs.ReasonPerconaNotReady, message: "initializing"})
	}), specs.ConditionDatabaseReady)
	assert.Equal(t, metav1.ConditionFalse, c.Status)
	assert.Equal(t, specs.ReasonPerconaNotReady, c.Reason)
}

func TestSetAvailable(t *testing.T) {
	notReady := readySts(1)
	notReady.Status.ReadyReplicas = 0
	stopped := readySts(0)
	cases := map[string]struct {
		sts    *appsv1.StatefulSet
		status metav1.ConditionStatus
		reason string
		msg    string
	}{
		"no StatefulSet": {nil, metav1.ConditionFalse, specs.ReasonPodsNotReady, "the StatefulSet does not exist yet"},
		"pod ready":      {readySts(1), metav1.ConditionTrue, specs.ReasonPodsReady, "1/1 pods ready"},
		"pod not ready":  {notReady, metav1.ConditionFalse, specs.ReasonPodsNotReady, "0/1 pods ready; see kubectl describe pod x-0"},
		"stopped":        {stopped, metav1.ConditionTrue, specs.ReasonStopped, "replicas is 0: the server is stopped, its volumes are kept"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := only(t, conditionsOf(func(c conditions) { setAvailable(c, statusServer(), tc.sts) }), specs.ConditionAvailable)
			assert.Equal(t, tc.status, c.Status)
			assert.Equal(t, tc.reason, c.Reason)
			assert.Equal(t, tc.msg, c.Message)
		})
	}
}

func TestSetProgressing(t *testing.T) {
	updating := readySts(1)
	updating.Status.UpdateRevision, updating.Status.CurrentRevision = "r2", "r1"
	scaling := readySts(1) // the spec asks for 0
	cases := map[string]struct {
		o      func(o *observed)
		spec   func(*v1alpha1.DittoServer)
		status metav1.ConditionStatus
		reason string
		msg    string
	}{
		"rolled out": {func(o *observed) { o.observeStatefulSet(readySts(1)) }, nil, metav1.ConditionFalse, specs.ReasonRolledOut, "no rollout in flight"},
		"new server": {func(o *observed) {}, nil, metav1.ConditionTrue, specs.ReasonReconciling, "creating the server"},
		"new server waiting for its database": {func(o *observed) { o.database = &finding{reason: specs.ReasonPerconaNotReady} },
			nil, metav1.ConditionTrue, specs.ReasonReconciling, "creating the server once its database is ready"},
		"new server the user must fix": {func(o *observed) { o.configFailed(specs.Problemf(specs.ReasonInvalidSpec, "bad")) },
			nil, metav1.ConditionFalse, specs.ReasonRolledOut, "no rollout in flight"},
		"new revision": {func(o *observed) { o.observeStatefulSet(updating) }, nil, metav1.ConditionTrue, specs.ReasonRollingOut, "rolling out: 1/1 updated, 1 ready"},
		"scaling to the spec": {func(o *observed) { o.observeStatefulSet(scaling) },
			func(ds *v1alpha1.DittoServer) { ds.Spec.Replicas = ptr.To(int32(0)) }, metav1.ConditionTrue, specs.ReasonRollingOut, "rolling out: 1/1 updated, 1 ready"},
		"volumes expanding": {func(o *observed) { o.observeStatefulSet(readySts(1)); o.replacing = "re-creating StatefulSet x" },
			nil, metav1.ConditionTrue, specs.ReasonExpandingVolumes, "re-creating StatefulSet x"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ds := statusServer()
			if tc.spec != nil {
				tc.spec(ds)
			}
			o := newObserved(ds)
			tc.o(&o)
			c := only(t, conditionsOf(func(c conditions) { setProgressing(c, ds, &o) }), specs.ConditionProgressing)
			assert.Equal(t, tc.status, c.Status)
			assert.Equal(t, tc.reason, c.Reason)
			assert.Equal(t, tc.msg, c.Message)
		})
	}
}

func TestSetControlPlaneReady(t *testing.T) {
	applied := &controlplane.Outcome{ControlPlane: metav1.Condition{Status: metav1.ConditionTrue, Reason: specs.ReasonControlPlaneApplied, Message: "ok"}}
	withStore := &controlplane.Outcome{ControlPlane: applied.ControlPlane,
		Storage: &metav1.Condition{Status: metav1.ConditionFalse, Reason: specs.ReasonStoreUnhealthy, Message: "bucket unreachable"}}
	s3 := func(ds *v1alpha1.DittoServer) { ds.Spec.S3 = &v1alpha1.S3Spec{Bucket: "b"} }

	list := conditionsOf(func(c conditions) { setControlPlaneReady(c, statusServer(), nil) })
	assert.Empty(t, list, "the step did not run: nothing to say")

	list = conditionsOf(func(c conditions) { setControlPlaneReady(c, statusServer(), applied) })
	assert.Equal(t, metav1.ConditionTrue, only(t, list, specs.ConditionControlPlaneReady).Status)
	assert.Nil(t, meta.FindStatusCondition(list, specs.ConditionStorageReady), "no spec.s3: no StorageReady")

	list = conditionsOf(func(c conditions) { setControlPlaneReady(c, statusServer(s3), withStore) })
	assert.Equal(t, specs.ReasonStoreUnhealthy, only(t, list, specs.ConditionStorageReady).Reason)

	list = []metav1.Condition{{Type: specs.ConditionStorageReady, Status: metav1.ConditionTrue, Reason: specs.ReasonStoreHealthy}}
	setControlPlaneReady(conditions{list: &list, generation: 3}, statusServer(), withStore)
	assert.Nil(t, meta.FindStatusCondition(list, specs.ConditionStorageReady), "spec.s3 removed: StorageReady goes")

	list = []metav1.Condition{{Type: specs.ConditionStorageReady, Status: metav1.ConditionTrue, Reason: specs.ReasonStoreHealthy}}
	setControlPlaneReady(conditions{list: &list, generation: 3}, statusServer(s3), applied)
	assert.Equal(t, specs.ReasonStoreHealthy, meta.FindStatusCondition(list, specs.ConditionStorageReady).Reason, "not observed this time: kept")
}

// TestReadyPriority: Ready=False names the first thing that is not right, in a fixed order, and
// Ready=True carries the warnings.
func TestReadyPriority(t *testing.T) {
	cases := map[string]struct {
		server func(*v1alpha1.DittoServer)
		o      func(*observed)
		status metav1.ConditionStatus
		reason string
		msg    string
	}{
		"all ready": {nil, func(*observed) {}, metav1.ConditionTrue, specs.ReasonAllReady, "the server is ready"},
		"warnings ride along": {nil, func(o *observed) { o.warnings = []string{"spec.cache has no effect"} },
			metav1.ConditionTrue, specs.ReasonAllReady, "the server is ready; warnings: spec.cache has no effect"},
		"stopped": {func(ds *v1alpha1.DittoServer) { ds.Spec.Replicas = ptr.To(int32(0)) }, func(o *observed) { o.observeStatefulSet(readySts(0)) },
			metav1.ConditionTrue, specs.ReasonStopped, "replicas is 0: the server is stopped, its volumes are kept"},
		"a failed reconcile first": {nil, func(o *observed) {
			o.failure = errors.New("etcd timeout")
			o.configFailed(specs.Problemf(specs.ReasonSecretMissing, "missing"))
		}, metav1.ConditionFalse, specs.ReasonReconciling, "etcd timeout"},
		"then the config": {nil, func(o *observed) {
			o.configFailed(specs.Problemf(specs.ReasonSecretMissing, "missing"))
			o.database = &finding{reason: specs.ReasonPerconaNotReady, message: "db"}
		}, metav1.ConditionFalse, specs.ReasonSecretMissing, "missing"},
		"then the database": {func(ds *v1alpha1.DittoServer) { ds.Status.Conditions = nil }, func(o *observed) {
			o.database = &finding{reason: specs.ReasonPerconaNotReady, message: "db"}
		}, metav1.ConditionFalse, specs.ReasonPerconaNotReady, "db"},
		"then the Helm release": {func(ds *v1alpha1.DittoServer) {
			ds.Status.Conditions = []metav1.Condition{{Type: specs.ConditionIrreconcilable, Status: metav1.ConditionTrue, Message: "bad values"}}
		}, func(o *observed) { o.observeStatefulSet(nil) },
			metav1.ConditionFalse, specs.ReasonNotDeployed, "the Helm reconciler cannot render the chart: bad values"},
		"then a rollout": {nil, func(o *observed) { o.observeStatefulSet(nil) },
			metav1.ConditionFalse, specs.ReasonReconciling, "creating the server"},
		"a pod that is not ready is a rollout in flight": {nil, func(o *observed) {
			sts := readySts(1)
			sts.Status.ReadyReplicas, sts.Status.AvailableReplicas = 0, 0
			sts.Status.Replicas, sts.Status.UpdatedReplicas = 1, 1
			o.observeStatefulSet(sts)
		}, metav1.ConditionFalse, specs.ReasonRollingOut, "rolling out: 1/1 updated, 0 ready"},
		"then the control plane": {nil, func(o *observed) {
			o.controlPlane = &controlplane.Outcome{ControlPlane: metav1.Condition{Status: metav1.ConditionFalse,
				Reason: specs.ReasonAdminCredentialUnauthorized, Message: "refused"}}
		}, metav1.ConditionFalse, specs.ReasonAdminCredentialUnauthorized, "refused"},
		"then the store": {func(ds *v1alpha1.DittoServer) { ds.Spec.S3 = &v1alpha1.S3Spec{Bucket: "b"} }, func(o *observed) {
			o.controlPlane = &controlplane.Outcome{
				ControlPlane: metav1.Condition{Status: metav1.ConditionTrue, Reason: specs.ReasonControlPlaneApplied, Message: "ok"},
				Storage:      &metav1.Condition{Status: metav1.ConditionFalse, Reason: specs.ReasonStoreUnhealthy, Message: "S3 connectivity check failed"},
			}
		}, metav1.ConditionFalse, specs.ReasonStoreUnhealthy, "S3 connectivity check failed"},
		"an unreachable API holds Ready back": {nil, func(o *observed) {
			o.controlPlane = &controlplane.Outcome{ControlPlane: metav1.Condition{Status: metav1.ConditionUnknown,
				Reason: specs.ReasonAPIUnreachable, Message: "no answer"}}
		}, metav1.ConditionFalse, specs.ReasonAPIUnreachable, "no answer"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ds := statusServer()
			if tc.server != nil {
				tc.server(ds)
			}
			o := converged()
			tc.o(o)
			st := computeStatus(ds, o)
			c := only(t, st.Conditions, specs.ConditionReady)
			assert.Equal(t, tc.status, c.Status)
			assert.Equal(t, tc.reason, c.Reason)
			assert.Equal(t, tc.msg, c.Message)
		})
	}
}

func TestPhase(t *testing.T) {
	ready := func(status metav1.ConditionStatus, reason string) []metav1.Condition {
		return []metav1.Condition{{Type: specs.ConditionReady, Status: status, Reason: reason}}
	}
	assert.Equal(t, v1alpha1.PhaseRunning, phase(ready(metav1.ConditionTrue, specs.ReasonAllReady), false))
	assert.Equal(t, v1alpha1.PhaseStopped, phase(ready(metav1.ConditionTrue, specs.ReasonStopped), false))
	assert.Equal(t, v1alpha1.PhasePending, phase(ready(metav1.ConditionFalse, specs.ReasonPodsNotReady), false))
	assert.Equal(t, v1alpha1.PhaseFailed, phase(ready(metav1.ConditionFalse, specs.ReasonInvalidSpec), true), "the user must fix something")
}

// TestComputeStatus covers the fields beside the conditions: endpoints, replicas, hash, the
// Helm conditions left to their owner, and the phase.
func TestComputeStatus(t *testing.T) {
	ds := statusServer(func(ds *v1alpha1.DittoServer) {
		ds.Spec.SMB = &v1alpha1.SMBSpec{Enabled: true}
		ds.Status.Conditions = append(ds.Status.Conditions, metav1.Condition{Type: specs.ConditionDatabaseReady, Status: metav1.ConditionTrue})
	})
	o := converged()
	o.perconaCluster = "x-postgres"
	st := computeStatus(ds, o)
	assert.Equal(t, int64(3), st.ObservedGeneration)
	assert.Equal(t, "h1", st.ConfigHash)
	assert.Equal(t, "x-postgres", st.PerconaClusterName)
	assert.Equal(t, "x-file.ns.svc:12049", st.NFSEndpoint)
	assert.Equal(t, "x-file.ns.svc:12445", st.SMBEndpoint)
	assert.Equal(t, "x-api.ns.svc:8080", st.APIEndpoint)
	assert.Equal(t, int32(1), st.ReadyReplicas)
	assert.Equal(t, v1alpha1.PhaseRunning, st.Phase)
	assert.Nil(t, meta.FindStatusCondition(st.Conditions, specs.ConditionDeployed), "Helm's conditions are not the Go controller's to write")
	assert.Nil(t, meta.FindStatusCondition(st.Conditions, specs.ConditionDatabaseReady), "no database observed: the stale condition goes")
}
