package specs

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestConfigHash(t *testing.T) {
	base := ConfigHash("cfg", []HashPart{{"a", "k", []byte("v")}, {"b", "k", []byte("w")}})
	assert.Equal(t, base, ConfigHash("cfg", []HashPart{{"b", "k", []byte("w")}, {"a", "k", []byte("v")}}), "order-independent")
	assert.NotEqual(t, base, ConfigHash("cfg2", []HashPart{{"a", "k", []byte("v")}, {"b", "k", []byte("w")}}), "config counts")
	assert.NotEqual(t, base, ConfigHash("cfg", []HashPart{{"a", "k", []byte("v2")}, {"b", "k", []byte("w")}}), "secret bytes count")
	assert.NotEqual(t, ConfigHash("", []HashPart{{"ab", "c", nil}}), ConfigHash("", []HashPart{{"a", "bc", nil}}), "fields are delimited")
}

// TestHashFormatsAreStable: each hash is stored on running servers (the pod template's config
// hash, the spec-hash annotation, the S3 config hash on the operator Secret). A new format would
// restart or rewrite every server when the operator is upgraded. The expected values were
// computed outside Go (Python's hashlib) from the documented formats.
func TestHashFormatsAreStable(t *testing.T) {
	assert.Equal(t, "b833c060b750d32df33686c5dadffd82", ConfigHash("cfg", []HashPart{{"a", "k", []byte("v")}}),
		"sha256 over length-prefixed (uint64 big-endian) config, then name, key, value of each part")
	h, err := ObjectHash(map[string]any{"b": "x", "a": 1})
	assert.NoError(t, err)
	assert.Equal(t, "ecf9e98ec0641e23113ff3ce8bdc78d0", h, "sha256 over the compact JSON")
	assert.Equal(t, "8a452ff8d333a4ef14853e3b9529672e",
		StoreConfigHash(map[string]any{"bucket": "b", "access_key_id": "a", "secret_access_key": "s"}),
		"sha256 over key=JSON(value) lines in key order")
	assert.NotEqual(t, StoreConfigHash(map[string]any{"secret_access_key": "s"}), StoreConfigHash(map[string]any{"secret_access_key": "s2"}),
		"a rotated key is a new configuration")
}

func TestKeyedHash(t *testing.T) {
	a := KeyedHash("operator-password", "admin-password")
	assert.Len(t, a, 32)
	assert.Equal(t, a, KeyedHash("operator-password", "admin-password"))
	assert.NotEqual(t, a, KeyedHash("operator-password", "rotated"), "a new value")
	assert.NotEqual(t, a, KeyedHash("another-key", "admin-password"), "useless without the key")
}
