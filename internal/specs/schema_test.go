package specs

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chartutil"
)

// TestValidateValuesMatchesHelm: the schema compiled once accepts and refuses what Helm's own
// check does, with the same message.
func TestValidateValuesMatchesHelm(t *testing.T) {
	chrt := testRenderer(t).Chart
	require.NotNil(t, chrt.Schema)
	for name, extra := range map[string]map[string]any{
		"the spec as translated": nil,
		"unknown config section": {"config": map[string]any{"shares": []any{}}},
		"port out of range":      {"ports": map[string]any{"nfs": 70000}},
		"two errors":             {"ports": map[string]any{"nfs": "x", "api": -1}, "replicas": 3},
		"wrong type":             {"labels": "x"},
	} {
		t.Run(name, func(t *testing.T) {
			vals, err := chartutil.CoalesceValues(chrt, chartutil.MergeTables(extra, translateSpec(server(nil), "")))
			require.NoError(t, err)
			for range 2 { // compiled, then from the cache
				helm := chartutil.ValidateAgainstSchema(chrt, vals)
				ours := validateValues(chrt, vals)
				if extra == nil {
					assert.NoError(t, helm)
					assert.NoError(t, ours)
					continue
				}
				require.Error(t, helm)
				require.Error(t, ours)
				if name != "two errors" {
					assert.Equal(t, helm.Error(), ours.Error())
					continue
				}
				// Sibling causes (the two ports) come in map order, which varies from one call to
				// the next for Helm's own check too: the same lines, in either order.
				assert.ElementsMatch(t, strings.Split(helm.Error(), "\n"), strings.Split(ours.Error(), "\n"))
				assert.Equal(t, strings.SplitN(helm.Error(), "\n", 3)[:2], strings.SplitN(ours.Error(), "\n", 3)[:2], "same first lines")
			}
		})
	}
}
