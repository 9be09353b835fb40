package specs

import "reflect"

// FieldsMatch reports whether every field of want is in have with the same value: the test for
// drift of an object the operator applies, where have is what the API server returns (with the
// defaults and fields of other owners added). A nil in want means "not set". Lists match element
// by element and must have the same length, except, with byName, lists of named entries
// (containers, env, volumes, ports, ...): each entry of want must match the entry of the same
// name in have, which may hold more (server-side apply leaves other owners' entries, so they are
// no drift of ours).
func FieldsMatch(want, have any, byName bool) bool {
	switch w := want.(type) {
	case nil:
		return true
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			hv, present := h[k]
			if wv == nil {
				continue
			}
			if !present || !FieldsMatch(wv, hv, byName) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		if !ok {
			return false
		}
		if byName && named(w) && named(h) {
			byKey := map[string]any{}
			for _, item := range h {
				byKey[item.(map[string]any)["name"].(string)] = item
			}
			for _, item := range w {
				hv, found := byKey[item.(map[string]any)["name"].(string)]
				if !found || !FieldsMatch(item, hv, byName) {
					return false
				}
			}
			return true
		}
		if len(h) != len(w) {
			return false
		}
		for i := range w {
			if !FieldsMatch(w[i], h[i], byName) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(normalizeNumber(want), normalizeNumber(have))
	}
}

// named reports whether every element of l is an object with a string name.
func named(l []any) bool {
	for _, item := range l {
		m, ok := item.(map[string]any)
		if !ok {
			return false
		}
		if _, ok := m["name"].(string); !ok {
			return false
		}
	}
	return true
}

// normalizeNumber makes numbers decoded from YAML, JSON and Go types comparable.
func normalizeNumber(v any) any {
	switch n := v.(type) {
	case int:
		return float64(n)
	case int32:
		return float64(n)
	case int64:
		return float64(n)
	case float32:
		return float64(n)
	}
	return v
}
