package helmext

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestIsSubset(t *testing.T) {
	want := map[string]any{"spec": map[string]any{"ports": []any{map[string]any{"port": int64(80)}}}}
	assert.True(t, isSubset(want, map[string]any{"spec": map[string]any{"ports": []any{map[string]any{"port": float64(80), "nodePort": 30000}}, "clusterIP": "1.2.3.4"}}))
	assert.False(t, isSubset(want, map[string]any{"spec": map[string]any{"ports": []any{map[string]any{"port": 81}}}}))
	assert.False(t, isSubset(want, map[string]any{"spec": map[string]any{"ports": []any{map[string]any{"port": 80}, map[string]any{"port": 81}}}}), "extra list entries are drift")
	assert.False(t, isSubset(want, map[string]any{}))
}
