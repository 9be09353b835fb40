package helmext

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chart"
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
		Info: &release.Info{Status: status}, Chart: &chart.Chart{Metadata: &chart.Metadata{Name: "dittoserver"}}}
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

// TestCachingDriverListsANamespaceOnce: the first use in a namespace lists its release Secrets;
// after that, releases the cache does not hold do not exist (no read per new server), releases
// of other charts and releases whose write failed are read by name.
func TestCachingDriverListsANamespaceOnce(t *testing.T) {
	mem := driver.NewMemory()
	mem.SetNamespace("ns")
	require.NoError(t, mem.Create(releaseKey("a", 1), rel("a", 1, release.StatusDeployed)))
	require.NoError(t, mem.Create(releaseKey("b", 1), rel("b", 1, release.StatusDeployed)))
	other := rel("x", 1, release.StatusDeployed)
	other.Chart = &chart.Chart{Metadata: &chart.Metadata{Name: "someone-elses"}}
	require.NoError(t, mem.Create(releaseKey("x", 1), other))
	inner := &countingDriver{Driver: mem}
	st := storage.Init(&cachingDriver{inner: inner, namespace: "ns", cache: newReleaseCache("dittoserver")})

	a, err := st.Deployed("a")
	require.NoError(t, err)
	assert.Equal(t, "ma", a.Manifest)
	assert.Equal(t, 1, inner.reads, "one listing")
	b, err := st.Deployed("b")
	require.NoError(t, err)
	assert.Equal(t, "mb", b.Manifest)
	_, err = st.Last("new")
	require.ErrorIs(t, err, driver.ErrReleaseNotFound)
	assert.Equal(t, 1, inner.reads, "servers of a listed namespace cost no read")

	// A release first written after the listing is kept.
	require.NoError(t, st.Create(rel("new", 1, release.StatusDeployed)))
	n, err := st.Deployed("new")
	require.NoError(t, err)
	assert.Equal(t, 1, n.Version)
	assert.Equal(t, 1, inner.reads)

	// Another chart's release is not kept from the listing; it is read by name when asked for.
	x, err := st.Deployed("x")
	require.NoError(t, err)
	assert.Equal(t, "someone-elses", x.Chart.Metadata.Name)
	assert.Equal(t, 2, inner.reads)

	// A failed write drops what is known: the next use reads the release by name.
	failing := &failingDriver{Driver: inner, fail: true}
	st2 := storage.Init(&cachingDriver{inner: failing, namespace: "ns", cache: st.Driver.(*cachingDriver).cache})
	a.Info.Status = release.StatusSuperseded
	require.Error(t, st2.Update(a))
	failing.fail = false
	before := inner.reads
	d, err := st2.Deployed("b")
	require.NoError(t, err, "other releases are still known")
	assert.Equal(t, 1, d.Version)
	assert.Equal(t, before, inner.reads)
	h, err := st2.History("a")
	require.NoError(t, err)
	assert.Len(t, h, 1)
	assert.Equal(t, before+1, inner.reads, "read by name after the failed write")
}

// TestCachingDriverWriteDuringListing: a release written while the namespace is being listed
// is not taken from that (possibly older) listing.
func TestCachingDriverWriteDuringListing(t *testing.T) {
	mem := driver.NewMemory()
	mem.SetNamespace("ns")
	require.NoError(t, mem.Create(releaseKey("a", 1), rel("a", 1, release.StatusDeployed)))
	require.NoError(t, mem.Create(releaseKey("c", 1), rel("c", 1, release.StatusDeployed)))
	slow := &slowListDriver{Driver: mem, listed: make(chan struct{}), release: make(chan struct{})}
	cache := newReleaseCache("dittoserver")
	st := storage.Init(&cachingDriver{inner: slow, namespace: "ns", cache: cache})

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := st.Deployed("a") // lists the namespace; the listing is taken, then held
		assert.NoError(t, err)
	}()
	<-slow.listed
	// c v1 is superseded by c v2 while the listing (which has only c v1) is held.
	c1 := rel("c", 1, release.StatusSuperseded)
	require.NoError(t, mem.Update(releaseKey("c", 1), c1))
	require.NoError(t, (&cachingDriver{inner: mem, namespace: "ns", cache: cache}).Create(releaseKey("c", 2), rel("c", 2, release.StatusDeployed)))
	close(slow.release)
	wg.Wait()

	d, err := st.Deployed("c")
	require.NoError(t, err)
	assert.Equal(t, 2, d.Version, "not the stale listing")
	h, err := st.History("c")
	require.NoError(t, err)
	assert.Len(t, h, 2)
}

type failingDriver struct {
	driver.Driver
	fail bool
}

func (f *failingDriver) Update(key string, r *release.Release) error {
	if f.fail {
		return errors.New("conflict")
	}
	return f.Driver.Update(key, r)
}

// slowListDriver takes a namespace listing, then holds it until release is closed.
type slowListDriver struct {
	driver.Driver
	listed, release chan struct{}
}

func (s *slowListDriver) Query(l map[string]string) ([]*release.Release, error) {
	rels, err := s.Driver.Query(l)
	if l["name"] == "" {
		close(s.listed)
		<-s.release
	}
	return rels, err
}

// TestCachingDriverKeepsEachChartOnce: every revision carries the same chart; the cache keeps
// it once and gives each release back with its chart.
func TestCachingDriverKeepsEachChartOnce(t *testing.T) {
	mem := driver.NewMemory()
	mem.SetNamespace("ns")
	cache := newReleaseCache("dittoserver")
	st := storage.Init(&cachingDriver{inner: mem, namespace: "ns", cache: cache})
	withChart := func(name string, version int, tmpl string) *release.Release {
		r := rel(name, version, release.StatusDeployed)
		r.Chart = &chart.Chart{Metadata: &chart.Metadata{Name: "dittoserver", Version: "0.1.0"},
			Templates: []*chart.File{{Name: "templates/cm.yaml", Data: []byte(tmpl)}}}
		return r
	}
	for _, name := range []string{"a", "b", "c"} {
		_, err := st.Last(name)
		require.ErrorIs(t, err, driver.ErrReleaseNotFound)
		require.NoError(t, st.Create(withChart(name, 1, "kind: ConfigMap")))
	}
	require.NoError(t, st.Create(withChart("a", 2, "kind: ConfigMap # v2")))
	assert.Len(t, cache.chartJSON, 2, "one copy per distinct chart")
	for name, want := range map[string]string{"b": "kind: ConfigMap", "a": "kind: ConfigMap # v2"} {
		last, err := st.Last(name)
		require.NoError(t, err)
		require.NotNil(t, last.Chart)
		assert.Equal(t, "dittoserver", last.Chart.Metadata.Name)
		assert.Equal(t, want, string(last.Chart.Templates[0].Data), name)
	}
	first, err := st.Get("a", 1)
	require.NoError(t, err)
	assert.Equal(t, "kind: ConfigMap", string(first.Chart.Templates[0].Data))
	first.Chart.Templates[0].Data = []byte("mutated")
	again, err := st.Get("a", 1)
	require.NoError(t, err)
	assert.Equal(t, "kind: ConfigMap", string(again.Chart.Templates[0].Data), "each release gets its own copy")
}

// writeCountingDriver counts the writes that reach the real storage.
type writeCountingDriver struct {
	driver.Driver
	writes []string
}

func (c *writeCountingDriver) Create(key string, r *release.Release) error {
	c.writes = append(c.writes, "create "+key+" "+r.Info.Status.String())
	return c.Driver.Create(key, r)
}

func (c *writeCountingDriver) Update(key string, r *release.Release) error {
	c.writes = append(c.writes, "update "+key+" "+r.Info.Status.String())
	return c.Driver.Update(key, r)
}

func (c *writeCountingDriver) Delete(key string) (*release.Release, error) {
	c.writes = append(c.writes, "delete "+key)
	return c.Driver.Delete(key)
}

// TestCachingDriverWritesPendingRevisionsOnce: Helm's install and upgrade create a pending
// revision and then record how they ended; storage sees one write per revision, with the end
// state, and a process that stops in between leaves storage as it was before the action.
func TestCachingDriverWritesPendingRevisionsOnce(t *testing.T) {
	mem := driver.NewMemory()
	mem.SetNamespace("ns")
	inner := &writeCountingDriver{Driver: mem}
	st := storage.Init(&cachingDriver{inner: inner, namespace: "ns", cache: newReleaseCache()})
	st.MaxHistory = 2

	// install, as action.Install does it
	v1 := rel("a", 1, release.StatusPendingInstall)
	require.NoError(t, st.Create(v1))
	last, err := st.Last("a")
	require.NoError(t, err)
	assert.Equal(t, release.StatusPendingInstall, last.Info.Status, "the pending revision is visible to Helm")
	_, err = mem.Get(releaseKey("a", 1))
	require.ErrorIs(t, err, driver.ErrReleaseNotFound, "not written yet")
	v1.Info.Status = release.StatusDeployed
	require.NoError(t, st.Update(v1))
	assert.Equal(t, []string{"create sh.helm.release.v1.a.v1 deployed"}, inner.writes)

	// two upgrades, as action.Upgrade does them (history bound 2: the second drops v1)
	for v := 2; v <= 3; v++ {
		inner.writes = nil
		next := rel("a", v, release.StatusPendingUpgrade)
		require.NoError(t, st.Create(next))
		prev, err := st.Get("a", v-1)
		require.NoError(t, err)
		prev.Info.Status = release.StatusSuperseded
		require.NoError(t, st.Update(prev))
		next.Info.Status = release.StatusDeployed
		require.NoError(t, st.Update(next))
		want := []string{fmt.Sprintf("update sh.helm.release.v1.a.v%d superseded", v-1), fmt.Sprintf("create sh.helm.release.v1.a.v%d deployed", v)}
		if v == 3 {
			want = append([]string{"delete sh.helm.release.v1.a.v1"}, want...)
		}
		assert.Equal(t, want, inner.writes)
	}

	// an upgrade interrupted after its pending revision: storage still has v3 deployed
	inner.writes = nil
	require.NoError(t, st.Create(rel("a", 4, release.StatusPendingUpgrade)))
	fresh := storage.Init(&cachingDriver{inner: mem, namespace: "ns", cache: newReleaseCache()})
	d, err := fresh.Deployed("a")
	require.NoError(t, err)
	assert.Equal(t, 3, d.Version)
	h, err := fresh.History("a")
	require.NoError(t, err)
	assert.Len(t, h, 1, "v3 (v2 went to the history bound before v4 was created; v4 was never written)")
	assert.Equal(t, []string{"delete sh.helm.release.v1.a.v2"}, inner.writes, "only the history bound's delete reached storage")

	// a held revision deleted (an uninstall of a release stuck pending) never reaches storage
	inner.writes = nil
	_, err = st.Delete("a", 4)
	require.NoError(t, err)
	assert.Empty(t, inner.writes)
	_, err = st.Get("a", 4)
	require.ErrorIs(t, err, driver.ErrReleaseNotFound)
}
