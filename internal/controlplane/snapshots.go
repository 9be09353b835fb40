package controlplane

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/dittoapi"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// intervalShorthands are the @-intervals DittoFS v0.29.0 accepts besides Go durations.
var intervalShorthands = map[string]time.Duration{"@hourly": time.Hour, "@daily": 24 * time.Hour, "@weekly": 7 * 24 * time.Hour}

// parseSpan reads an interval or TTL of the spec or of the server ("" is 0).
func parseSpan(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if d, ok := intervalShorthands[strings.ToLower(s)]; ok {
		return d, nil
	}
	return time.ParseDuration(s)
}

// policyMatches reports whether the server's policy is the spec's.
func policyMatches(cur dittoapi.SnapshotPolicy, want v1alpha1.SnapshotPolicySpec) bool {
	ci, err1 := parseSpan(cur.Interval)
	wi, err2 := parseSpan(want.Interval)
	ct, err3 := parseSpan(cur.TTL)
	wt, err4 := parseSpan(want.TTL)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return false
	}
	enabled := want.Enabled == nil || *want.Enabled
	return ci == wi && ct == wt && cur.KeepLast == int(want.KeepLast) && cur.Enabled == enabled
}

// shareKey is a share name with its leading slash, as spec.shares writes it.
func shareKey(name string) string { return "/" + strings.TrimLeft(name, "/") }

// applySnapshotPolicies converges spec.snapshotPolicies with one list call in steady state
// (none for a server that has never had one): a missing or changed policy is put, and a policy
// the operator created that the spec no longer lists is deleted. A policy made by other means
// (dfsctl) is never deleted; one the spec takes over is kept when the spec lets it go. The
// shares whose policy the operator created are kept in an annotation of its Secret.
func (r *run) applySnapshotPolicies(ctx context.Context) error {
	ds, c := r.ds, r.api
	managed := splitNames(r.secret.Annotations[specs.AnnotationManagedSnapshotPolicies])
	if len(ds.Spec.SnapshotPolicies) == 0 && len(managed) == 0 {
		return nil
	}
	list, err := c.ListSnapshotPolicies(ctx)
	if err != nil {
		return err
	}
	have := map[string]dittoapi.SnapshotPolicy{}
	for _, p := range list {
		have[shareKey(p.Share)] = p
	}
	want := map[string]bool{}
	for _, p := range ds.Spec.SnapshotPolicies {
		name := shareKey(p.Share)
		want[name] = true
		cur, exists := have[name]
		if exists && policyMatches(cur, p) {
			continue
		}
		req := dittoapi.PutSnapshotPolicyRequest{Interval: p.Interval, KeepLast: int(p.KeepLast), TTL: p.TTL,
			Enabled: ptr.To(p.Enabled == nil || *p.Enabled)}
		if _, err := c.PutSnapshotPolicy(ctx, name, req); err != nil {
			if dittoapi.IsNotFound(err) {
				return specs.Problemf(specs.ReasonControlPlaneFailed,
					"spec.snapshotPolicies: share %s does not exist on the server; declare it in spec.shares (or create it), or remove its policy", name)
			}
			return fmt.Errorf("applying the snapshot policy of share %s: %w", name, err)
		}
		if !exists {
			managed[name] = true
		}
		r.deps.Recorder.Eventf(ds, corev1.EventTypeNormal, specs.EventSnapshotPolicyApplied,
			"Applied the snapshot policy of share %s from spec.snapshotPolicies (every %s, keep last %d, ttl %q)", name, p.Interval, p.KeepLast, p.TTL)
	}
	for name := range managed {
		if want[name] {
			continue
		}
		if _, exists := have[name]; exists {
			if err := c.DeleteSnapshotPolicy(ctx, name); err != nil && !dittoapi.IsNotFound(err) {
				return fmt.Errorf("deleting the snapshot policy of share %s: %w", name, err)
			}
			r.deps.Recorder.Eventf(ds, corev1.EventTypeNormal, specs.EventSnapshotPolicyDeleted,
				"Deleted the snapshot policy of share %s: no longer in spec.snapshotPolicies", name)
		}
		delete(managed, name)
	}
	if joined := joinNames(managed); joined != r.secret.Annotations[specs.AnnotationManagedSnapshotPolicies] {
		return r.writeSecret(ctx, nil, map[string]string{specs.AnnotationManagedSnapshotPolicies: joined})
	}
	return nil
}
