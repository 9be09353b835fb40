package specs

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFieldsMatch(t *testing.T) {
	svc := map[string]any{"spec": map[string]any{"ports": []any{map[string]any{"port": int64(80)}}}}
	assert.True(t, FieldsMatch(svc, map[string]any{"spec": map[string]any{"ports": []any{map[string]any{"port": float64(80), "nodePort": 30000}}, "clusterIP": "1.2.3.4"}}, false),
		"fields the server adds are no drift; numbers compare across types")
	assert.False(t, FieldsMatch(svc, map[string]any{"spec": map[string]any{"ports": []any{map[string]any{"port": 81}}}}, false))
	assert.False(t, FieldsMatch(svc, map[string]any{"spec": map[string]any{"ports": []any{map[string]any{"port": 80}, map[string]any{"port": 81}}}}, false),
		"without byName an extra list entry is drift")
	assert.False(t, FieldsMatch(svc, map[string]any{}, false))
	assert.True(t, FieldsMatch(map[string]any{"a": nil}, map[string]any{}, false), "nil is not set")

	env := func(entries ...map[string]any) map[string]any {
		l := make([]any, 0, len(entries))
		for _, e := range entries {
			l = append(l, e)
		}
		return map[string]any{"env": l}
	}
	want := env(map[string]any{"name": "A", "value": "1"}, map[string]any{"name": "B", "value": "2"})
	assert.True(t, FieldsMatch(want, env(map[string]any{"name": "B", "value": "2"}, map[string]any{"name": "X", "value": "9"}, map[string]any{"name": "A", "value": "1"}), true),
		"byName: order and other owners' entries do not matter")
	assert.False(t, FieldsMatch(want, env(map[string]any{"name": "A", "value": "1"}, map[string]any{"name": "B", "value": "edited"}), true), "an edited entry is drift")
	assert.False(t, FieldsMatch(want, env(map[string]any{"name": "A", "value": "1"}), true), "a removed entry is drift")
	assert.False(t, FieldsMatch(map[string]any{"args": []any{"a", "b"}}, map[string]any{"args": []any{"b", "a"}}, true), "unnamed lists keep their order")
}
