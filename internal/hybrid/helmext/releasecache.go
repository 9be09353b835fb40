package helmext

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
)

// releaseCache keeps the Helm releases of each DittoServer in memory, so the Helm reconciler
// does not list its release Secrets on every reconcile (three to four LISTs each). It is a
// write-through cache. The first use in a namespace lists the namespace's release Secrets
// once; after that a release it does not hold has no Secret, since every write goes through
// it. It assumes what the design assumes: only the operator (the leader) writes its release
// Secrets. A write error drops what is known of that release, which is then read again by name.
//
// A revision Helm creates in a pending state (pending-install, pending-upgrade, ...) is kept in
// memory only and written once, when Helm records how the action ended: one write per install
// or upgrade instead of two. A pending record in storage only tells a later process that an
// action was interrupted; without it that process sees the revision before (or none) and acts
// again, which is safe for the operator's releases: an install adopts the objects the
// interrupted one created (they carry the release's ownership annotations), an upgrade starts
// from the last revision, deployed or superseded. The pending revision is not in List.
type releaseCache struct {
	mu     sync.Mutex
	byName map[string]map[string][]byte // namespace/release -> storage key -> JSON release
	// unwritten are the namespace/storage keys of pending revisions held in byName only.
	unwritten  map[string]bool
	namespaces map[string]*nsReleases
	// charts are the operator's charts: a listing keeps only their releases (another chart's
	// release in the same namespace is read by name if ever asked for). Empty keeps all.
	charts map[string]bool

	// chartJSON holds each distinct chart of the kept releases once, by content digest.
	chartMu   sync.Mutex
	chartJSON map[string][]byte
}

// nsReleases is what the cache knows of one namespace.
type nsReleases struct {
	// listed: every release of the namespace written by the operator is in byName.
	listed bool
	// written collects, while the namespace is being listed, the releases written meanwhile:
	// the listing may predate those writes, so it does not fill them in.
	written map[string]bool
	// byNameOnly are releases to read by name: dropped after a write error, or not the
	// operator's (another chart's release in the same namespace).
	byNameOnly map[string]bool
	// listing serializes the one listing of the namespace.
	listing sync.Mutex
}

func newReleaseCache(charts ...string) *releaseCache {
	c := &releaseCache{byName: map[string]map[string][]byte{}, unwritten: map[string]bool{}, namespaces: map[string]*nsReleases{},
		charts: map[string]bool{}, chartJSON: map[string][]byte{}}
	for _, name := range charts {
		c.charts[name] = true
	}
	return c
}

// ours reports whether r is a release of one of the operator's charts.
func (c *releaseCache) ours(r *release.Release) bool {
	if len(c.charts) == 0 {
		return true
	}
	return r.Chart != nil && r.Chart.Metadata != nil && c.charts[r.Chart.Metadata.Name]
}

// wrote records a write of release name; callers hold the cache's mu.
func (st *nsReleases) wrote(name string) {
	if st.written != nil {
		st.written[name] = true
	}
}

// ns returns the state of a namespace; callers hold c.mu.
func (c *releaseCache) ns(namespace string) *nsReleases {
	st, ok := c.namespaces[namespace]
	if !ok {
		st = &nsReleases{byNameOnly: map[string]bool{}}
		c.namespaces[namespace] = st
	}
	return st
}

// cachingDriver is a driver.Driver over one namespace's release Secrets.
type cachingDriver struct {
	inner driver.Driver
	// writer writes release Secrets in inner's place (nil: inner writes).
	writer    releaseWrites
	namespace string
	cache     *releaseCache
}

var _ driver.Driver = &cachingDriver{}

// releaseWrites are a driver's two writes.
type releaseWrites interface {
	Create(key string, r *release.Release) error
	Update(key string, r *release.Release) error
}

func (d *cachingDriver) writes() releaseWrites {
	if d.writer != nil {
		return d.writer
	}
	return d.inner
}

const releaseKeyPrefix = "sh.helm.release.v1."

// releaseNameOfKey parses "sh.helm.release.v1.<name>.v<version>".
func releaseNameOfKey(key string) (string, bool) {
	if !strings.HasPrefix(key, releaseKeyPrefix) {
		return "", false
	}
	rest := strings.TrimPrefix(key, releaseKeyPrefix)
	i := strings.LastIndex(rest, ".v")
	if i <= 0 {
		return "", false
	}
	return rest[:i], true
}

func releaseKey(name string, version int) string {
	return releaseKeyPrefix + name + ".v" + strconv.Itoa(version)
}

func (d *cachingDriver) id(name string) string { return d.namespace + "/" + name }

// storedRelease is a release as the cache keeps it: the labels the Secrets driver stores next
// to it, and its chart by content digest (releaseCache.chartJSON), since every revision of every
// server carries the same chart.
type storedRelease struct {
	*release.Release
	StoredLabels map[string]string `json:"storedLabels,omitempty"`
	ChartDigest  string            `json:"chartDigest,omitempty"`
}

// encode returns the JSON the cache keeps for r; its chart is kept once per content.
func (c *releaseCache) encode(r *release.Release) ([]byte, error) {
	s := storedRelease{Release: r, StoredLabels: r.Labels}
	if r.Chart != nil {
		chartJSON, err := json.Marshal(r.Chart)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(chartJSON)
		s.ChartDigest = hex.EncodeToString(sum[:])
		c.chartMu.Lock()
		if _, ok := c.chartJSON[s.ChartDigest]; !ok {
			c.chartJSON[s.ChartDigest] = chartJSON
		}
		c.chartMu.Unlock()
		withoutChart := *r
		withoutChart.Chart = nil
		s.Release = &withoutChart
	}
	return json.Marshal(s)
}

// decode returns a fresh copy of a kept release, chart included.
func (c *releaseCache) decode(b []byte) (*release.Release, error) {
	var s storedRelease
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	r := s.Release
	if r == nil {
		r = &release.Release{}
	}
	r.Labels = s.StoredLabels
	if s.ChartDigest != "" {
		c.chartMu.Lock()
		chartJSON, ok := c.chartJSON[s.ChartDigest]
		c.chartMu.Unlock()
		if !ok {
			return nil, fmt.Errorf("release %s v%d: chart %s not in the release cache", r.Name, r.Version, s.ChartDigest)
		}
		r.Chart = &chart.Chart{}
		if err := json.Unmarshal(chartJSON, r.Chart); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// load returns the cached releases of name: from memory, else (first use in the namespace)
// from one listing of the namespace's release Secrets, else from its Secrets by name.
func (d *cachingDriver) load(name string) (map[string][]byte, error) {
	if entry, ok := d.cached(name); ok {
		return entry, nil
	}
	if err := d.listNamespace(); err != nil {
		return nil, err
	}
	if entry, ok := d.cached(name); ok {
		return entry, nil
	}
	rels, err := d.inner.Query(map[string]string{"name": name, "owner": "helm"})
	if err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, err
	}
	entry := map[string][]byte{}
	for _, r := range rels {
		b, err := d.cache.encode(r)
		if err != nil {
			return nil, err
		}
		entry[releaseKey(r.Name, r.Version)] = b
	}
	d.cache.mu.Lock()
	d.cache.byName[d.id(name)] = entry
	delete(d.cache.ns(d.namespace).byNameOnly, name)
	d.cache.mu.Unlock()
	return entry, nil
}

// cached returns the entry of name if memory has it or knows there is none.
func (d *cachingDriver) cached(name string) (map[string][]byte, bool) {
	d.cache.mu.Lock()
	defer d.cache.mu.Unlock()
	if entry, ok := d.cache.byName[d.id(name)]; ok {
		return entry, true
	}
	st := d.cache.ns(d.namespace)
	if !st.listed || st.byNameOnly[name] {
		return nil, false
	}
	entry := map[string][]byte{} // listed, never written since: no release
	d.cache.byName[d.id(name)] = entry
	return entry, true
}

// listNamespace lists the namespace's release Secrets once and keeps the operator's releases.
func (d *cachingDriver) listNamespace() error {
	d.cache.mu.Lock()
	st := d.cache.ns(d.namespace)
	d.cache.mu.Unlock()
	st.listing.Lock()
	defer st.listing.Unlock()
	d.cache.mu.Lock()
	listed := st.listed
	if !listed {
		st.written = map[string]bool{}
	}
	d.cache.mu.Unlock()
	if listed {
		return nil
	}
	rels, err := d.inner.Query(map[string]string{"owner": "helm"})
	if err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
		d.cache.mu.Lock()
		st.written = nil
		d.cache.mu.Unlock()
		return err
	}
	entries := map[string]map[string][]byte{}
	foreign := map[string]bool{}
	for _, r := range rels {
		if !d.cache.ours(r) {
			foreign[r.Name] = true
			continue
		}
		b, err := d.cache.encode(r)
		if err != nil {
			return err
		}
		if entries[r.Name] == nil {
			entries[r.Name] = map[string][]byte{}
		}
		entries[r.Name][releaseKey(r.Name, r.Version)] = b
	}
	d.cache.mu.Lock()
	defer d.cache.mu.Unlock()
	for name := range st.written {
		if _, ok := d.cache.byName[d.id(name)]; !ok {
			foreign[name] = true // written during the listing and not in memory: read by name
		}
	}
	for name, entry := range entries {
		if _, ok := d.cache.byName[d.id(name)]; !ok && !foreign[name] {
			d.cache.byName[d.id(name)] = entry
		}
	}
	for name := range foreign {
		st.byNameOnly[name] = true
	}
	st.listed, st.written = true, nil
	return nil
}

func (d *cachingDriver) invalidate(name string) {
	d.cache.mu.Lock()
	for key := range d.cache.byName[d.id(name)] {
		delete(d.cache.unwritten, d.id(key)) // lost with the entry, as if the process had stopped
	}
	delete(d.cache.byName, d.id(name))
	d.cache.ns(d.namespace).wrote(name)
	d.cache.ns(d.namespace).byNameOnly[name] = true
	d.cache.mu.Unlock()
}

// store keeps r under key: after it was written to the Secrets, or, held, instead of writing
// it (a pending revision, releaseCache; only a key not known yet). It reports whether r is kept.
func (d *cachingDriver) store(key string, r *release.Release, held bool) bool {
	name := r.Name
	b, err := d.cache.encode(r)
	d.cache.mu.Lock()
	defer d.cache.mu.Unlock()
	st := d.cache.ns(d.namespace)
	st.wrote(name)
	entry, ok := d.cache.byName[d.id(name)]
	if !ok {
		if !st.listed || st.byNameOnly[name] {
			return false // not loaded: the next use reads the Secrets
		}
		entry = map[string][]byte{} // first release of this name since the listing
		d.cache.byName[d.id(name)] = entry
	}
	if err != nil {
		delete(d.cache.byName, d.id(name))
		st.byNameOnly[name] = true
		return false
	}
	if held {
		if _, exists := entry[key]; exists {
			return false
		}
		d.cache.unwritten[d.id(key)] = true
	}
	entry[key] = b
	return true
}

func (d *cachingDriver) Name() string { return d.inner.Name() }

func (d *cachingDriver) Get(key string) (*release.Release, error) {
	name, ok := releaseNameOfKey(key)
	if !ok {
		return d.inner.Get(key)
	}
	entry, err := d.load(name)
	if err != nil {
		return nil, err
	}
	d.cache.mu.Lock()
	b, found := entry[key]
	d.cache.mu.Unlock()
	if !found {
		return nil, driver.ErrReleaseNotFound
	}
	return d.cache.decode(b)
}

func (d *cachingDriver) List(filter func(*release.Release) bool) ([]*release.Release, error) {
	return d.inner.List(filter)
}

func (d *cachingDriver) Query(labels map[string]string) ([]*release.Release, error) {
	name := labels["name"]
	if name == "" || (labels["owner"] != "" && labels["owner"] != "helm") {
		return d.inner.Query(labels)
	}
	entry, err := d.load(name)
	if err != nil {
		return nil, err
	}
	d.cache.mu.Lock()
	blobs := make([][]byte, 0, len(entry))
	for _, b := range entry {
		blobs = append(blobs, b)
	}
	d.cache.mu.Unlock()
	var out []*release.Release
	for _, b := range blobs {
		r, err := d.cache.decode(b)
		if err != nil {
			return nil, err
		}
		if releaseMatches(r, labels) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, driver.ErrReleaseNotFound
	}
	return out, nil
}

// releaseMatches applies the labels the Secrets driver stores on each release Secret.
func releaseMatches(r *release.Release, labels map[string]string) bool {
	for k, v := range labels {
		var have string
		switch k {
		case "name":
			have = r.Name
		case "owner":
			have = "helm"
		case "version":
			have = strconv.Itoa(r.Version)
		case "status":
			if r.Info != nil {
				have = r.Info.Status.String()
			}
		default:
			have = r.Labels[k]
		}
		if have != v {
			return false
		}
	}
	return true
}

func (d *cachingDriver) Create(key string, r *release.Release) error {
	if r.Info != nil && r.Info.Status.IsPending() && d.holdPending(key, r) {
		return nil
	}
	return d.writeThrough(d.writes().Create, key, r)
}

// holdPending keeps a new pending revision in memory only (releaseCache); false when it cannot
// (its release does not load, or the key is already known) and it is to be written.
func (d *cachingDriver) holdPending(key string, r *release.Release) bool {
	if _, err := d.load(r.Name); err != nil {
		return false
	}
	return d.store(key, r, true)
}

// takeUnwritten reports whether key is a pending revision held in memory only, and forgets that
// it is: the caller writes it or drops it.
func (d *cachingDriver) takeUnwritten(key string) bool {
	d.cache.mu.Lock()
	defer d.cache.mu.Unlock()
	held := d.cache.unwritten[d.id(key)]
	delete(d.cache.unwritten, d.id(key))
	return held
}

func (d *cachingDriver) Update(key string, r *release.Release) error {
	if d.takeUnwritten(key) {
		return d.writeThrough(d.writes().Create, key, r) // the first write of a held revision
	}
	return d.writeThrough(d.writes().Update, key, r)
}

// writeThrough writes r to the Secrets, then keeps it; a failed write drops what is known of
// the release (it is read by name again).
func (d *cachingDriver) writeThrough(write func(string, *release.Release) error, key string, r *release.Release) error {
	if err := write(key, r); err != nil {
		d.invalidate(r.Name)
		return err
	}
	d.store(key, r, false)
	return nil
}

func (d *cachingDriver) Delete(key string) (*release.Release, error) {
	name, ok := releaseNameOfKey(key)
	var r *release.Release
	var err error
	if ok && d.takeUnwritten(key) {
		r, err = d.Get(key) // held in memory only: nothing to delete in storage
	} else {
		r, err = d.inner.Delete(key)
	}
	if !ok {
		return r, err
	}
	if err != nil {
		d.invalidate(name)
		return r, err
	}
	d.cache.mu.Lock()
	d.cache.ns(d.namespace).wrote(name)
	if entry, ok := d.cache.byName[d.id(name)]; ok {
		delete(entry, key)
		if len(entry) == 0 {
			delete(d.cache.byName, d.id(name))
		}
	}
	d.cache.mu.Unlock()
	return r, nil
}
