// Package layout checks the map of the packages in docs/ARCHITECTURE.md ("Where things live"):
// which room may import which, and that the pure builders stay away from the API client.
package layout

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dittofs/dittofs-operator/test/apiserver"
)

const module = "github.com/dittofs/dittofs-operator/"

// rooms lists, for each package of the operator, the packages of the module it may import.
// Imports go down the list only: a room never imports one above it.
var rooms = map[string][]string{
	"api/v1alpha1":            {},
	"internal/dittoapi":       {},
	"internal/metricsauth":    {},
	"internal/specs":          {"api/v1alpha1"},
	"internal/validation":     {"api/v1alpha1", "internal/specs"},
	"internal/controlplane":   {"api/v1alpha1", "internal/specs", "internal/dittoapi"},
	"internal/hybrid/helmext": {"api/v1alpha1", "internal/specs"},
	"internal/hybrid":         {"api/v1alpha1", "internal/specs", "internal/validation", "internal/controlplane", "internal/hybrid/helmext"},
}

// goList runs go list in the repository and returns its lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = apiserver.RepoRoot()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "go list: %s", stderr.String())
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

func TestRoomsImportOnlyDownwards(t *testing.T) {
	seen := map[string]bool{}
	for _, line := range goList(t, "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./api/...", "./internal/...") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		if strings.HasPrefix(pkg, "internal/dittoapi/") {
			continue // test helpers of the API client
		}
		allowed, known := rooms[pkg]
		if !assert.True(t, known, "package %s is in no room: add it to docs/ARCHITECTURE.md and to this test", pkg) {
			continue
		}
		seen[pkg] = true
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			dep := strings.TrimPrefix(imp, module)
			assert.Contains(t, allowed, dep, "%s may not import %s", pkg, dep)
		}
	}
	for pkg := range rooms {
		assert.True(t, seen[pkg], "room %s has no package any more: update the map", pkg)
	}
}

// TestSpecsHaveNoAPIClient: the builders are pure functions; internal/specs imports no API
// client. (The Percona API types it builds link controller-runtime's client package for their
// own helpers; specs never uses it.)
func TestSpecsHaveNoAPIClient(t *testing.T) {
	var bad []string
	for _, dep := range strings.Fields(goList(t, "-f", "{{join .Imports \" \"}}", "./internal/specs")[0]) {
		if strings.HasPrefix(dep, "sigs.k8s.io/controller-runtime/pkg/client") ||
			dep == "k8s.io/client-go/rest" || strings.HasPrefix(dep, "k8s.io/client-go/kubernetes/typed") {
			bad = append(bad, dep)
		}
	}
	sort.Strings(bad)
	assert.Empty(t, bad, "internal/specs depends on an API client")
}

// TestCommentsCiteOnlyTheRepository: a reader of the code can follow every reference.
func TestCommentsCiteOnlyTheRepository(t *testing.T) {
	root := apiserver.RepoRoot()
	for _, dir := range []string{"api", "internal", "hack", "test"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, outside := range []string{"ARCHITECTURE " + "§", "shared/" + "design", "seed/" + "STATE"} {
				assert.NotContains(t, string(data), outside, "%s cites a document outside the repository", path)
			}
			return nil
		})
		require.NoError(t, err)
	}
	main, err := os.ReadFile(filepath.Join(root, "main.go"))
	require.NoError(t, err)
	assert.NotContains(t, string(main), "ARCHITECTURE "+"§")
}
