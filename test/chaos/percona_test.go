package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pgv2 "github.com/percona/percona-postgresql-operator/v2/pkg/apis/pgv2.percona.com/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const perconaCRDName = "perconapgclusters.pgv2.percona.com"

// perconaCRD writes the PerconaPGCluster CRD of the percona-postgresql-operator module the
// operator is built with (its deploy/crd.yaml holds eight CRDs) into a temporary directory.
func perconaCRD(t *testing.T) (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/percona/percona-postgresql-operator/v2").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m percona-postgresql-operator/v2: %w", err)
	}
	all, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "deploy", "crd.yaml"))
	if err != nil {
		return "", err
	}
	for _, doc := range strings.Split(string(all), "\n---\n") {
		if !strings.Contains(doc, "\n  name: "+perconaCRDName+"\n") {
			continue
		}
		dir := t.TempDir()
		doc = strings.TrimPrefix(strings.TrimSpace(doc), "---\n")
		return dir, os.WriteFile(filepath.Join(dir, perconaCRDName+".yaml"), []byte(doc), 0o600)
	}
	return "", fmt.Errorf("no %s in deploy/crd.yaml", perconaCRDName)
}

// fakePercona plays the Percona operator until the test ends: every PerconaPGCluster is
// reported ready and gets its user Secret (what DittoFS connects with).
func (r *run) fakePercona(ctx context.Context) {
	for ctx.Err() == nil && time.Now().Before(r.deadline.Add(cleanupMargin)) {
		list := &pgv2.PerconaPGClusterList{}
		if err := r.k8s.List(ctx, list, client.InNamespace(namespace)); err == nil {
			for i := range list.Items {
				pg := &list.Items[i]
				if pg.DeletionTimestamp != nil {
					continue
				}
				r.perconaUserSecret(ctx, pg.Name)
				if pg.Status.State != pgv2.AppStateReady {
					_ = r.k8s.Status().Patch(ctx, pg, client.RawPatch(types.MergePatchType, []byte(`{"status":{"state":"ready"}}`)))
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// perconaUserSecret creates <cluster>-pguser-dittofs as Percona does, once.
func (r *run) perconaUserSecret(ctx context.Context, cluster string) {
	host := fmt.Sprintf("%s-primary.%s.svc", cluster, namespace)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: cluster + "-pguser-dittofs", Namespace: namespace}}
	if err := r.k8s.Get(ctx, client.ObjectKeyFromObject(s), s); !apierrors.IsNotFound(err) {
		return
	}
	s.Data = map[string][]byte{
		"host": []byte(host), "port": []byte("5432"), "dbname": []byte("dittofs"), "user": []byte("dittofs"),
		"password": []byte("chaos-password"),
		"uri":      []byte(fmt.Sprintf("postgresql://dittofs:chaos-password@%s:5432/dittofs", host)),
	}
	_ = r.k8s.Create(ctx, s)
	_ = r.k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: cluster + "-cluster-cert", Namespace: namespace},
		Data: map[string][]byte{"ca.crt": []byte("ca of " + cluster)}})
}
