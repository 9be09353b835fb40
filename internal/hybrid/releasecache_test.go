package hybrid

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
)

// countingDriver counts the reads that reach the real storage.
type countingDriver struct {
	driver.Driver
	reads int
}

func (c *countingDriver) Get(key string) (*release.Release, error) {
	c.reads++
	return c.Driver.Get(key)
}

func (c *countingDriver) Query(l map[string]string) ([]*release.Release, error) {
	c.reads++
	return c.Driver.Query(l)
}

func rel(name string, version int, status release.Status) *release.Release {
	return &release.Release{Name: name, Namespace: "ns", Version: version, Manifest: "m" + name,
		Info: &release.Info{Status: status}}
}

func TestCachingDriverAgreesWithStorage(t *testing.T) {
	mem := driver.NewMemory()
	mem.SetNamespace("ns")
	inner := &countingDriver{Driver: mem}
	cache := newReleaseCache()
	st := storage.Init(&cachingDriver{inner: inner, namespace: "ns", cache: cache})

	_, err := st.Last("a")
	require.ErrorIs(t, err, driver.ErrReleaseNotFound)
	require.NoError(t, st.Create(rel("a", 1, release.StatusDeployed)))
	r1, err := st.Deployed("a")
	require.NoError(t, err)
	assert.Equal(t, 1, r1.Version)

	// An upgrade: v1 superseded, v2 deployed.
	r1.Info.Status = release.StatusSuperseded
	require.NoError(t, st.Update(r1))
	require.NoError(t, st.Create(rel("a", 2, release.StatusDeployed)))
	readsBefore := inner.reads
	d, err := st.Deployed("a")
	require.NoError(t, err)
	assert.Equal(t, 2, d.Version)
	h, err := st.History("a")
	require.NoError(t, err)
	assert.Len(t, h, 2)
	last, err := st.Last("a")
	require.NoError(t, err)
	assert.Equal(t, 2, last.Version)
	assert.Equal(t, readsBefore, inner.reads, "reads after the first load come from memory")

	// A fresh cache over the same storage sees the same thing.
	fresh := storage.Init(&cachingDriver{inner: mem, namespace: "ns", cache: newReleaseCache()})
	h2, err := fresh.History("a")
	require.NoError(t, err)
	assert.Len(t, h2, 2)
	d2, err := fresh.Deployed("a")
	require.NoError(t, err)
	assert.Equal(t, 2, d2.Version)

	// Uninstall forgets everything.
	_, err = st.Delete("a", 1)
	require.NoError(t, err)
	_, err = st.Delete("a", 2)
	require.NoError(t, err)
	_, err = st.Last("a")
	require.ErrorIs(t, err, driver.ErrReleaseNotFound)
	_, err = mem.Get(releaseKey("a", 2))
	require.ErrorIs(t, err, driver.ErrReleaseNotFound)

	// Returned releases are copies: mutating one does not change the cache.
	require.NoError(t, st.Create(rel("b", 1, release.StatusDeployed)))
	got, err := st.Get("b", 1)
	require.NoError(t, err)
	got.Info.Status = release.StatusFailed
	again, err := st.Get("b", 1)
	require.NoError(t, err)
	assert.Equal(t, release.StatusDeployed, again.Info.Status)
}

func TestReleaseNameOfKey(t *testing.T) {
	n, ok := releaseNameOfKey(releaseKey("my.server-1", 12))
	assert.True(t, ok)
	assert.Equal(t, "my.server-1", n)
	_, ok = releaseNameOfKey("something-else")
	assert.False(t, ok)
}
