package specs

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"sort"
)

// HashPart is one referenced Secret key and its bytes, an input of ConfigHash.
type HashPart struct {
	Name, Key string
	Value     []byte
}

// ConfigHash is sha256 over the rendered config.yaml and the bytes of every referenced Secret
// key. Not the generation: a change that does not reach the pod (e.g. a Service annotation)
// must not restart it.
func ConfigHash(configYAML string, parts []HashPart) string {
	sorted := append([]HashPart(nil), parts...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Name != sorted[j].Name {
			return sorted[i].Name < sorted[j].Name
		}
		return sorted[i].Key < sorted[j].Key
	})
	h := sha256.New()
	writeField(h, []byte(configYAML))
	for _, p := range sorted {
		writeField(h, []byte(p.Name))
		writeField(h, []byte(p.Key))
		writeField(h, p.Value)
	}
	return sum(h)
}

// ObjectHash is sha256 over the JSON of v: it tells whether a desired object changed since it
// was last applied (AnnotationSpecHash).
func ObjectHash(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	_, _ = h.Write(b)
	return sum(h), nil
}

// StoreConfigHash is the hash of a remote store configuration sent through the REST API
// (AnnotationS3ConfigHash). The value is stored on running servers, so its format must not
// change: a new format would update every S3 store once and restart its pod.
func StoreConfigHash(cfg map[string]any) string {
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		b, _ := json.Marshal(cfg[k])
		_, _ = fmt.Fprintf(h, "%s=%s\n", k, b)
	}
	return sum(h)
}

// KeyedHash is an HMAC-SHA256 of value under key: it tells whether a secret value changed
// without revealing it to whoever reads the hash but not the key.
func KeyedHash(key, value string) string {
	m := hmac.New(sha256.New, []byte(key))
	_, _ = m.Write([]byte(value))
	return sum(m)
}

// sum is the first 128 bits of the digest, in hex: short enough for annotations, long enough
// that two configurations never collide in practice.
func sum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil))[:32] }

// writeField writes a length-prefixed field, so ("ab","c") and ("a","bc") hash differently.
func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	_, _ = h.Write(n[:])
	_, _ = h.Write(b)
}
