package hybrid

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"sort"
)

// ConfigHash is sha256 over the rendered config.yaml and the bytes of every referenced Secret
// key. Not the generation: a change that does not reach the pod (e.g. a Service annotation)
// must not restart it.
func ConfigHash(configYAML string, parts []hashPart) string {
	sorted := append([]hashPart(nil), parts...)
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
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// writeField writes a length-prefixed field, so ("ab","c") and ("a","bc") hash differently.
func writeField(h interface{ Write([]byte) (int, error) }, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	_, _ = h.Write(n[:])
	_, _ = h.Write(b)
}
