package helmext

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestSecretWriterWritesWhatHelmWrites: a release Secret written by secretWriter is the one
// Helm's Secrets driver writes (name, type, labels, data byte for byte), Helm reads it back, and
// the reused gzip writers leave nothing of one release in the next.
func TestSecretWriterWritesWhatHelmWrites(t *testing.T) {
	ctx := context.Background()
	helmSide, ours := fake.NewSimpleClientset(), fake.NewSimpleClientset()
	helm := driver.NewSecrets(helmSide.CoreV1().Secrets("ns"))
	now := time.Now()
	w := &secretWriter{secrets: ours.CoreV1().Secrets("ns"), now: func() time.Time { return now }}
	reader := driver.NewSecrets(ours.CoreV1().Secrets("ns"))

	releases := []*release.Release{
		{Name: "a", Namespace: "ns", Version: 1, Manifest: "kind: ConfigMap\n", Labels: map[string]string{"team": "storage"},
			Info:   &release.Info{Status: release.StatusDeployed, Description: "Install complete"},
			Chart:  &chart.Chart{Metadata: &chart.Metadata{Name: "dittoserver", Version: "0.1.0"}},
			Config: map[string]any{"ports": map[string]any{"nfs": 2049}}},
		{Name: "b", Namespace: "ns", Version: 3, Manifest: "kind: Service\n",
			Info: &release.Info{Status: release.StatusSuperseded}},
	}
	for _, r := range releases {
		key := releaseKey(r.Name, r.Version)
		require.NoError(t, helm.Create(key, r))
		require.NoError(t, w.Create(key, r))
		want, err := helmSide.CoreV1().Secrets("ns").Get(ctx, key, metav1.GetOptions{})
		require.NoError(t, err)
		got, err := ours.CoreV1().Secrets("ns").Get(ctx, key, metav1.GetOptions{})
		require.NoError(t, err)

		assert.Equal(t, want.Type, got.Type, key)
		assert.Equal(t, want.Data, got.Data, "%s: the same bytes as Helm's encoding", key)
		stamp, err := strconv.ParseInt(want.Labels["createdAt"], 10, 64)
		require.NoError(t, err)
		assert.InDelta(t, now.Unix(), stamp, 5)
		want.Labels["createdAt"] = strconv.FormatInt(now.Unix(), 10)
		assert.Equal(t, want.Labels, got.Labels, key)

		back, err := reader.Get(key)
		require.NoError(t, err, "Helm reads it")
		assert.Equal(t, r.Manifest, back.Manifest)
		assert.Equal(t, r.Info.Status, back.Info.Status)
	}

	// Update: the labels follow the new status, modifiedAt is set.
	r := releases[0]
	r.Info.Status = release.StatusSuperseded
	require.NoError(t, w.Update(releaseKey("a", 1), r))
	got, err := ours.CoreV1().Secrets("ns").Get(ctx, releaseKey("a", 1), metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "superseded", got.Labels["status"])
	assert.Equal(t, strconv.FormatInt(now.Unix(), 10), got.Labels["modifiedAt"])

	assert.ErrorIs(t, w.Create(releaseKey("a", 1), r), driver.ErrReleaseExists, "as Helm's driver: install retries on it")
}
