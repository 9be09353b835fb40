package main

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// specChange changes spec.database.sqlite.path of the first server (the one the timeline
// follows), which changes its config.yaml: time until the ConfigMap changes, the StatefulSet's
// pod template carries the new config hash and rolls, and Ready=True again; then the requests
// and reconciles until the operator is quiet.
func (br *benchRun) specChange(ctx context.Context) error {
	res, k8s, trk, tr, op, key := br.res, br.k8s, br.trk, br.tr, br.op, br.servers[0]
	br.mark("spec change")
	res.SpecChange.Server = key.String()
	var oldHash string
	trk.with(key.String(), func(s *crState) { oldHash = s.hash })
	s0, err := take(op, tr, 0, 0)
	if err != nil {
		return err
	}
	ds := &v1alpha1.DittoServer{}
	patch := []byte(`{"spec":{"database":{"sqlite":{"path":"/data/controlplane/bench-changed.db"}}}}`)
	t0 := time.Now()
	ds.Name, ds.Namespace = key.Name, key.Namespace
	if err := k8s.Patch(ctx, ds, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return err
	}
	gen := ds.Generation
	servers := []types.NamespacedName{key}
	if waitFor(ctx, trk, servers, 2*time.Minute, "new hash and Ready", func(s *crState) bool {
		_, ready := s.readyAt[gen]
		return ready && s.hash != oldHash
	}) != 1 {
		return fmt.Errorf("%s: no new config hash and Ready=True (generation %d) after 2 minutes", key, gen)
	}
	trk.with(key.String(), func(s *crState) {
		res.SpecChange.HashSeconds = round3(s.hashSeen[s.hash].Sub(t0).Seconds())
		res.SpecChange.ReadySeconds = round3(s.readyAt[gen].Sub(t0).Seconds())
		if r, ok := s.rolledAt[s.hash]; ok {
			res.SpecChange.RolledSeconds = round3(r.Sub(t0).Seconds())
		}
		if s.cmChanged.After(t0) {
			res.SpecChange.ConfigMapSeconds = round3(s.cmChanged.Sub(t0).Seconds())
		}
	})
	_, last, _, err := waitQuiet(ctx, op, br.cfg.Quiet, time.Minute, time.Now())
	if err != nil {
		return err
	}
	res.SpecChange.QuietSeconds = round3(last.Sub(t0).Seconds())
	s1, err := take(op, tr, 0, 0)
	if err != nil {
		return err
	}
	res.SpecChange.Metrics = s0.m.delta(s1.m)
	res.SpecChange.Trace = s0.tr.delta(s1.tr)
	res.SpecChange.CPUSeconds = round3(s1.p.CPUSeconds - s0.p.CPUSeconds)
	total, writes := apiRequests(res.SpecChange.Metrics, res.SpecChange.Trace)
	logf("spec change of %s: ConfigMap %.3fs, new hash %.3fs, rolled %.3fs, Ready %.3fs; %d requests (%d writes), %d reconciles",
		key, res.SpecChange.ConfigMapSeconds, res.SpecChange.HashSeconds, res.SpecChange.RolledSeconds, res.SpecChange.ReadySeconds,
		total, writes, res.SpecChange.Metrics.ReconcilesTotal)
	return nil
}
