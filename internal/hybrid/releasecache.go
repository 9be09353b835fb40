package hybrid

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"

	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
)

// releaseCache keeps the Helm releases of each DittoServer in memory, so the Helm reconciler
// does not list its release Secrets on every reconcile (three to four LISTs each). It is a
// write-through cache filled from the Secrets on first use. It assumes what the design
// assumes: only the operator (the leader) writes its release Secrets; any write error drops
// the entry, and the next use reloads it.
type releaseCache struct {
	mu     sync.Mutex
	byName map[string]map[string][]byte // namespace/release -> storage key -> JSON release
}

func newReleaseCache() *releaseCache {
	return &releaseCache{byName: map[string]map[string][]byte{}}
}

// cachingDriver is a driver.Driver over one namespace's release Secrets.
type cachingDriver struct {
	inner     driver.Driver
	namespace string
	cache     *releaseCache
}

var _ driver.Driver = &cachingDriver{}

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

func encodeRelease(r *release.Release) ([]byte, error) {
	type withLabels struct {
		*release.Release
		StoredLabels map[string]string `json:"storedLabels,omitempty"`
	}
	return json.Marshal(withLabels{Release: r, StoredLabels: r.Labels})
}

func decodeRelease(b []byte) (*release.Release, error) {
	var w struct {
		release.Release
		StoredLabels map[string]string `json:"storedLabels,omitempty"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, err
	}
	r := w.Release
	r.Labels = w.StoredLabels
	return &r, nil
}

// load returns the cached releases of name, reading them once from the Secrets.
func (d *cachingDriver) load(name string) (map[string][]byte, error) {
	d.cache.mu.Lock()
	entry, ok := d.cache.byName[d.id(name)]
	d.cache.mu.Unlock()
	if ok {
		return entry, nil
	}
	rels, err := d.inner.Query(map[string]string{"name": name, "owner": "helm"})
	if err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, err
	}
	entry = map[string][]byte{}
	for _, r := range rels {
		b, err := encodeRelease(r)
		if err != nil {
			return nil, err
		}
		entry[releaseKey(r.Name, r.Version)] = b
	}
	d.cache.mu.Lock()
	d.cache.byName[d.id(name)] = entry
	d.cache.mu.Unlock()
	return entry, nil
}

func (d *cachingDriver) invalidate(name string) {
	d.cache.mu.Lock()
	delete(d.cache.byName, d.id(name))
	d.cache.mu.Unlock()
}

func (d *cachingDriver) store(key string, r *release.Release) {
	name := r.Name
	b, err := encodeRelease(r)
	d.cache.mu.Lock()
	defer d.cache.mu.Unlock()
	entry, ok := d.cache.byName[d.id(name)]
	if !ok {
		return // not loaded: the next use reads the Secrets
	}
	if err != nil {
		delete(d.cache.byName, d.id(name))
		return
	}
	entry[key] = b
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
	return decodeRelease(b)
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
		r, err := decodeRelease(b)
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
	if err := d.inner.Create(key, r); err != nil {
		d.invalidate(r.Name)
		return err
	}
	d.store(key, r)
	return nil
}

func (d *cachingDriver) Update(key string, r *release.Release) error {
	if err := d.inner.Update(key, r); err != nil {
		d.invalidate(r.Name)
		return err
	}
	d.store(key, r)
	return nil
}

func (d *cachingDriver) Delete(key string) (*release.Release, error) {
	r, err := d.inner.Delete(key)
	name, ok := releaseNameOfKey(key)
	if !ok {
		return r, err
	}
	if err != nil {
		d.invalidate(name)
		return r, err
	}
	d.cache.mu.Lock()
	if entry, ok := d.cache.byName[d.id(name)]; ok {
		delete(entry, key)
		if len(entry) == 0 {
			delete(d.cache.byName, d.id(name))
		}
	}
	d.cache.mu.Unlock()
	return r, nil
}
