package controlplane

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/dittofs/dittofs-operator/internal/dittoapi"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// applyAdapters keeps NFS enabled and SMB enabled per spec.smb.enabled, both on the container
// ports the Services target: a port changed out of band (dfsctl) is put back, so the Services
// never point at a port nothing listens on. spec.smb.maxConnections becomes the SMB adapter's
// max_connections setting.
func (r *run) applyAdapters(ctx context.Context) error {
	list, err := r.api.ListAdapters(ctx)
	if err != nil {
		return err
	}
	have := map[string]dittoapi.Adapter{}
	for _, a := range list {
		have[a.Type] = a
	}
	ports := r.adapterPorts(r.ds)
	want := map[string]bool{"nfs": true, "smb": r.ds.Spec.SMBEnabled()}
	for _, typ := range []string{"nfs", "smb"} {
		a, ok := have[typ]
		if !ok {
			return fmt.Errorf("the server has no %s adapter", typ)
		}
		enabled, port := want[typ], ports[typ]
		if a.Enabled == enabled && (a.Port == port || !enabled) {
			continue
		}
		req := dittoapi.UpdateAdapterRequest{Enabled: &enabled}
		if enabled {
			req.Port = &port
		}
		if _, err := r.api.UpdateAdapter(ctx, typ, req); err != nil {
			return fmt.Errorf("updating the %s adapter: %w", typ, err)
		}
		r.deps.Recorder.Eventf(r.ds, corev1.EventTypeNormal, specs.EventAdapterUpdated, "%s adapter: enabled %t -> %t, port %d -> %d", typ, a.Enabled, enabled, a.Port, port)
	}
	if smb := r.ds.Spec.SMB; smb != nil && smb.Enabled && smb.MaxConnections != nil {
		set, err := r.api.GetAdapterSettings(ctx, "smb")
		if err != nil {
			return err
		}
		if n, _ := set["max_connections"].(float64); int32(n) != *smb.MaxConnections {
			if _, err := r.api.PatchAdapterSettings(ctx, "smb", map[string]any{"max_connections": *smb.MaxConnections}); err != nil {
				return fmt.Errorf("setting SMB max_connections: %w", err)
			}
		}
	}
	return nil
}
