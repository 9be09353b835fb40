// Package olm checks the generated OLM bundle (bundle/, made by hack/bundle.sh) and file-based
// catalog (catalog/, made by hack/catalog.sh) without a cluster: the bundle passes the same
// validators as `operator-sdk bundle validate --select-optional suite=operatorframework`, run as
// a library with no error and no warning; the CSV carries what OLM and OperatorHub users need;
// bundle and catalog agree with their sources (CRD, RBAC, samples, icon) and with each other.
package olm

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/operator-framework/api/pkg/manifests"
	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	"github.com/operator-framework/api/pkg/validation"
	validationerrors "github.com/operator-framework/api/pkg/validation/errors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metavalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// The release version (VERSION) names the CSV, the operator image tag and the bundle image.
var (
	version       = readVersion()
	csvName       = "dittofs-operator.v" + version
	operatorImage = "ghcr.io/dittofs/dittofs-operator:v" + version
	bundleImage   = "ghcr.io/dittofs/dittofs-operator-bundle:v" + version
)

func readVersion() string {
	b, err := os.ReadFile(path("VERSION"))
	if err != nil {
		panic(err)
	}
	return strings.TrimSpace(string(b))
}

const (
	packageName    = "dittofs-operator"
	defaultChannel = "alpha"
	dittofsImage   = "marmos91c/dittofs:v0.29.0"
	webhookPath    = "/validate-dittofs-dittofs-com-v1alpha1-dittoserver"
	webhookPort    = 9443
	crdName        = "dittoservers.dittofs.dittofs.com"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func path(parts ...string) string { return filepath.Join(append([]string{repoRoot()}, parts...)...) }

// loadBundle reads bundle/manifests the way operator-sdk bundle validate does
// (apimanifests.GetBundleFromDir on the manifests directory; channels and package come from
// metadata/annotations.yaml, checked in TestBundleAnnotations).
func loadBundle(t *testing.T) *manifests.Bundle {
	t.Helper()
	b, err := manifests.GetBundleFromDir(path("bundle", "manifests"))
	require.NoError(t, err, "loading bundle/manifests: run make bundle")
	require.NotNil(t, b.CSV, "bundle/ has no ClusterServiceVersion")
	return b
}

// readDocs returns every YAML/JSON document of a file as generic JSON values.
func readDocs(t *testing.T, file string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "parsing %s", file)
		if len(doc) > 0 {
			docs = append(docs, normalize(t, doc).(map[string]any))
		}
	}
	return docs
}

// normalize round-trips v through JSON so values from YAML, JSON and Go structs compare equal.
func normalize(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var out any
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

func describe(results []validationerrors.ManifestResult) (errs, warns []string) {
	for _, r := range results {
		for _, e := range r.Errors {
			errs = append(errs, r.Name+": "+e.Error())
		}
		for _, w := range r.Warnings {
			warns = append(warns, r.Name+": "+w.Error())
		}
	}
	return errs, warns
}

// TestBundleValidates runs what `operator-sdk bundle validate ./bundle --select-optional
// suite=operatorframework` runs (operator-sdk v1.42.2 internal/registry/validate.go and
// internal/cmd/operator-sdk/bundle/validate/optional.go): object metadata, the bundle, CSV and
// CRD validators, then the operatorframework suite. Warnings fail the test too.
func TestBundleValidates(t *testing.T) {
	b := loadBundle(t)

	var results []validationerrors.ManifestResult
	for _, u := range b.Objects {
		kind := u.GetKind()
		if kind == "ClusterServiceVersion" || kind == "CustomResourceDefinition" {
			continue
		}
		noPrefix := func(string, bool) []string { return nil }
		for _, e := range metavalidation.ValidateObjectMetaAccessor(u, false, noPrefix, field.NewPath("metadata")) {
			results = append(results, validationerrors.ManifestResult{Name: kind + "/" + u.GetName(),
				Errors: []validationerrors.Error{validationerrors.ErrFailedValidation(e.Error(), u.GetName())}})
		}
	}
	results = append(results, validation.BundleValidator.Validate(b)...)
	results = append(results, validation.ClusterServiceVersionValidator.Validate(b.CSV)...)
	crds := make([]any, 0, len(b.V1CRDs))
	for _, crd := range b.V1CRDs {
		crds = append(crds, crd)
	}
	require.Len(t, b.V1beta1CRDs, 0)
	results = append(results, validation.CustomResourceDefinitionValidator.Validate(crds...)...)

	// The operatorframework suite gets every bundle object plus the optional values (none).
	objs := b.ObjectsToValidate()
	for _, o := range b.Objects {
		objs = append(objs, o)
	}
	objs = append(objs, map[string]string{})
	suite := validation.OperatorHubV2Validator.WithValidators(
		validation.StandardCapabilitiesValidator,
		validation.StandardCategoriesValidator,
		validation.AlphaDeprecatedAPIsValidator,
		validation.GoodPracticesValidator,
	)
	require.Len(t, suite, 5)
	results = append(results, suite.Validate(objs...)...)

	errs, warns := describe(results)
	assert.Empty(t, errs, "bundle validation errors")
	assert.Empty(t, warns, "bundle validation warnings")
}

func bundleAnnotations(t *testing.T) map[string]any {
	t.Helper()
	docs := readDocs(t, path("bundle", "metadata", "annotations.yaml"))
	require.Len(t, docs, 1)
	annotations, _ := docs[0]["annotations"].(map[string]any)
	require.NotEmpty(t, annotations)
	return annotations
}

// TestBundleAnnotations checks metadata/annotations.yaml, the bundle.Dockerfile labels and the
// absence of dependencies.yaml (see the Percona note in the base CSV).
func TestBundleAnnotations(t *testing.T) {
	_, err := os.Stat(path("bundle", "metadata", "dependencies.yaml"))
	assert.True(t, os.IsNotExist(err), "bundle/metadata/dependencies.yaml must not exist: OLM dependencies "+
		"are mandatory and the Percona operator is optional (see config/manifests/bases)")

	annotations := bundleAnnotations(t)
	assert.Equal(t, packageName, annotations["operators.operatorframework.io.bundle.package.v1"])
	assert.Equal(t, defaultChannel, annotations["operators.operatorframework.io.bundle.channels.v1"])
	assert.Equal(t, defaultChannel, annotations["operators.operatorframework.io.bundle.channel.default.v1"])
	assert.Equal(t, "registry+v1", annotations["operators.operatorframework.io.bundle.mediatype.v1"])

	dockerfile, err := os.ReadFile(path("bundle.Dockerfile"))
	require.NoError(t, err)
	labels := map[string]any{}
	for _, line := range strings.Split(string(dockerfile), "\n") {
		label, isLabel := strings.CutPrefix(line, "LABEL ")
		if k, v, ok := strings.Cut(label, "="); isLabel && ok {
			labels[k] = v
		}
	}
	assert.Equal(t, annotations, labels, "bundle.Dockerfile labels and metadata/annotations.yaml differ")
	assert.Equal(t, "operator-sdk-v1.42.2", annotations["operators.operatorframework.io.metrics.builder"])
	_, err = os.Stat(path("bundle", "tests", "scorecard", "config.yaml"))
	assert.NoError(t, err, "scorecard config")
}

func TestCSVMetadata(t *testing.T) {
	csv := loadBundle(t).CSV
	assert.Equal(t, csvName, csv.Name)
	assert.Equal(t, version, csv.Spec.Version.String())
	assert.Equal(t, "1.30.0", csv.Spec.MinKubeVersion, "pods use the native preStop sleep action")
	assert.Equal(t, "Basic Install", csv.Annotations["capabilities"],
		"capability level: see the comment in config/manifests/bases (change both together)")
	assert.Contains(t, strings.Split(csv.Annotations["categories"], ","), "Storage")
	assert.Equal(t, operatorImage, csv.Annotations["containerImage"])
	assert.NotContains(t, csv.Annotations, "createdAt", "hack/bundle.sh strips createdAt so the bundle is reproducible")
	assert.NotEmpty(t, csv.Spec.Description)
	assert.Contains(t, csv.Spec.Description, "Percona", "the description says Percona is optional")
	assert.NotEmpty(t, csv.Spec.Keywords)
	assert.NotEmpty(t, csv.Spec.Links)
	assert.NotEmpty(t, csv.Spec.Maintainers)
	assert.NotEmpty(t, csv.Spec.Provider.Name)

	require.Len(t, csv.Spec.Icon, 1)
	assert.Equal(t, "image/svg+xml", csv.Spec.Icon[0].MediaType)
	svg, err := os.ReadFile(path("config", "manifests", "icon.svg"))
	require.NoError(t, err)
	assert.Equal(t, base64.StdEncoding.EncodeToString(svg), csv.Spec.Icon[0].Data,
		"the CSV icon is config/manifests/icon.svg, base64-encoded")

	modes := map[operatorsv1alpha1.InstallModeType]bool{}
	for _, m := range csv.Spec.InstallModes {
		modes[m.Type] = m.Supported
	}
	assert.Equal(t, map[operatorsv1alpha1.InstallModeType]bool{
		operatorsv1alpha1.InstallModeTypeOwnNamespace:    true,
		operatorsv1alpha1.InstallModeTypeSingleNamespace: true,
		operatorsv1alpha1.InstallModeTypeMultiNamespace:  true,
		operatorsv1alpha1.InstallModeTypeAllNamespaces:   true,
	}, modes)

	images := map[string]string{}
	for _, ri := range csv.Spec.RelatedImages {
		images[ri.Image] = ri.Name
	}
	assert.Equal(t, map[string]string{operatorImage: "dittofs-operator", dittofsImage: "dittofs"}, images)
}

func managerDeployment(t *testing.T, csv *operatorsv1alpha1.ClusterServiceVersion) (string, appsv1.DeploymentSpec, corev1.Container) {
	t.Helper()
	deps := csv.Spec.InstallStrategy.StrategySpec.DeploymentSpecs
	require.Len(t, deps, 1)
	containers := deps[0].Spec.Template.Spec.Containers
	require.Len(t, containers, 1)
	require.Equal(t, "manager", containers[0].Name)
	return deps[0].Name, deps[0].Spec, containers[0]
}

func TestCSVDeployment(t *testing.T) {
	csv := loadBundle(t).CSV
	_, spec, c := managerDeployment(t, csv)
	assert.Equal(t, operatorImage, c.Image)

	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	assert.Equal(t, dittofsImage, env["RELATED_IMAGE_DITTOFS"].Value)
	assert.Equal(t, "true", env["ENABLE_WEBHOOKS"].Value)
	watch := env["WATCH_NAMESPACE"]
	assert.Empty(t, watch.Value)
	require.NotNil(t, watch.ValueFrom, "WATCH_NAMESPACE must come from the OperatorGroup")
	require.NotNil(t, watch.ValueFrom.FieldRef)
	assert.Equal(t, "metadata.annotations['olm.targetNamespaces']", watch.ValueFrom.FieldRef.FieldPath)

	var ports []int32
	for _, p := range c.Ports {
		ports = append(ports, p.ContainerPort)
	}
	assert.Contains(t, ports, int32(webhookPort))
	for _, m := range c.VolumeMounts {
		assert.NotEqual(t, "/tmp/k8s-webhook-server/serving-certs", m.MountPath,
			"OLM mounts the webhook certificate there itself; a second mount breaks the pod")
	}
	assert.NotNil(t, c.Resources.Requests.Cpu(), "good practice: resource requests")
	assert.True(t, *spec.Template.Spec.SecurityContext.RunAsNonRoot)
}

func TestCSVWebhook(t *testing.T) {
	csv := loadBundle(t).CSV
	depName, _, _ := managerDeployment(t, csv)
	require.Len(t, csv.Spec.WebhookDefinitions, 1)
	wh := csv.Spec.WebhookDefinitions[0]
	assert.Equal(t, operatorsv1alpha1.ValidatingAdmissionWebhook, wh.Type)
	assert.Equal(t, depName, wh.DeploymentName)
	require.NotNil(t, wh.WebhookPath)
	assert.Equal(t, webhookPath, *wh.WebhookPath)
	require.NotNil(t, wh.TargetPort)
	assert.Equal(t, webhookPort, wh.TargetPort.IntValue())
	assert.Contains(t, wh.AdmissionReviewVersions, "v1")
	require.Len(t, wh.Rules, 1)
	assert.Equal(t, []string{"dittofs.dittofs.com"}, wh.Rules[0].APIGroups)
	assert.Equal(t, []string{"dittoservers"}, wh.Rules[0].Resources)

	// The definition is config/webhook/manifests.yaml (generated from the markers).
	docs := readDocs(t, path("config", "webhook", "manifests.yaml"))
	require.Len(t, docs, 1)
	hooks := docs[0]["webhooks"].([]any)
	require.Len(t, hooks, 1)
	hook := hooks[0].(map[string]any)
	assert.Equal(t, hook["name"], wh.GenerateName)
	assert.Equal(t, hook["rules"], normalize(t, wh.Rules))
	assert.Equal(t, hook["failurePolicy"], string(*wh.FailurePolicy))
	assert.Equal(t, hook["clientConfig"].(map[string]any)["service"].(map[string]any)["path"], webhookPath)
}

// schemaAt walks a dot-separated descriptor path through the CRD's OpenAPI schema.
func schemaAt(s apiextensionsv1.JSONSchemaProps, descriptorPath string) bool {
	for _, seg := range strings.Split(descriptorPath, ".") {
		next, ok := s.Properties[seg]
		if !ok {
			return false
		}
		s = next
	}
	return true
}

func TestCSVOwnedCRD(t *testing.T) {
	b := loadBundle(t)
	owned := b.CSV.Spec.CustomResourceDefinitions.Owned
	require.Len(t, owned, 1)
	desc := owned[0]
	assert.Equal(t, crdName, desc.Name)
	assert.Equal(t, "DittoServer", desc.Kind)
	assert.Equal(t, "v1alpha1", desc.Version)
	assert.NotEmpty(t, desc.DisplayName)
	assert.NotEmpty(t, desc.Description)
	assert.Empty(t, b.CSV.Spec.CustomResourceDefinitions.Required, "required CRDs are hard OLM dependencies")

	require.Len(t, b.V1CRDs, 1)
	var schema apiextensionsv1.JSONSchemaProps
	for _, v := range b.V1CRDs[0].Spec.Versions {
		if v.Name == desc.Version {
			schema = *v.Schema.OpenAPIV3Schema
		}
	}
	require.NotEmpty(t, schema.Properties)

	require.NotEmpty(t, desc.SpecDescriptors)
	for _, d := range desc.SpecDescriptors {
		assert.True(t, schemaAt(schema.Properties["spec"], d.Path), "spec descriptor %q is not a field of the CRD", d.Path)
		assert.NotEmpty(t, d.DisplayName, d.Path)
		assert.NotEmpty(t, d.XDescriptors, d.Path)
	}
	var statusPaths []string
	for _, d := range desc.StatusDescriptors {
		statusPaths = append(statusPaths, d.Path)
		assert.True(t, schemaAt(schema.Properties["status"], d.Path), "status descriptor %q is not a field of the CRD", d.Path)
		assert.NotEmpty(t, d.XDescriptors, d.Path)
	}
	for _, p := range []string{"phase", "conditions", "nfsEndpoint", "apiEndpoint", "readyReplicas", "configHash"} {
		assert.Contains(t, statusPaths, p)
	}
}

// dittoServerSamples returns every DittoServer in config/samples, by name.
func dittoServerSamples(t *testing.T) map[string]map[string]any {
	t.Helper()
	files, err := filepath.Glob(path("config", "samples", "*.yaml"))
	require.NoError(t, err)
	samples := map[string]map[string]any{}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		for _, doc := range readDocs(t, f) {
			if doc["kind"] == "DittoServer" {
				name := doc["metadata"].(map[string]any)["name"].(string)
				require.NotContains(t, samples, name, "two samples named %s", name)
				samples[name] = doc
			}
		}
	}
	return samples
}

// TestALMExamplesAreTheSamples: alm-examples is exactly the set of DittoServers in config/samples
// (basic, with cache/metrics, postgres secret, s3+smb, percona, percona with backups).
func TestALMExamplesAreTheSamples(t *testing.T) {
	csv := loadBundle(t).CSV
	var examples []map[string]any
	require.NoError(t, json.Unmarshal([]byte(csv.Annotations["alm-examples"]), &examples), "alm-examples is not a JSON list")
	samples := dittoServerSamples(t)
	require.Len(t, samples, 6, "config/samples changed: update config/manifests/kustomization.yaml and this test")

	seen := map[string]bool{}
	for _, ex := range examples {
		ex = normalize(t, ex).(map[string]any)
		assert.Equal(t, "dittofs.dittofs.com/v1alpha1", ex["apiVersion"])
		assert.Equal(t, "DittoServer", ex["kind"])
		name, _ := ex["metadata"].(map[string]any)["name"].(string)
		sample, ok := samples[name]
		if assert.True(t, ok, "alm-example %q is not in config/samples", name) {
			assert.Equal(t, sample, ex, "alm-example %q differs from config/samples: run make bundle", name)
		}
		seen[name] = true
	}
	for name := range samples {
		assert.True(t, seen[name], "sample %q is missing from alm-examples: list it in config/manifests/kustomization.yaml", name)
	}
}

// TestBundleCarriesTheVersion: the CSV is VERSION's, and replaces any earlier version a
// cluster runs (olm.skipRange), so an upgrade is one step whatever the starting version.
func TestBundleCarriesTheVersion(t *testing.T) {
	csv := loadBundle(t).CSV
	assert.Equal(t, version, csv.Spec.Version.String())
	assert.Equal(t, "<"+version, csv.Annotations["olm.skipRange"])
	_, err := os.Stat(path("catalog", packageName, csvName+".yaml"))
	assert.NoError(t, err, "the catalog holds this version's bundle")
}

// TestBundleMatchesSources: the bundle's CRD and RBAC are the generated ones in config/ (a stale
// bundle fails here as well as in make verify).
func TestBundleMatchesSources(t *testing.T) {
	b := loadBundle(t)
	crdDocs := readDocs(t, path("config", "crd", "bases", "dittofs.dittofs.com_dittoservers.yaml"))
	require.Len(t, crdDocs, 1)
	require.Len(t, b.V1CRDs, 1)
	assert.Equal(t, crdDocs[0]["spec"], normalize(t, b.V1CRDs[0].Spec), "bundle CRD is stale: run make bundle")

	// Cluster-scoped rules are clusterPermissions; the namespaced rules and leader election's
	// are permissions, which OLM grants in the OperatorGroup's target namespaces only.
	strategy := b.CSV.Spec.InstallStrategy.StrategySpec
	clusterDocs := readDocs(t, path("config", "rbac", "cluster_role.yaml"))
	require.Len(t, clusterDocs, 1)
	require.Len(t, strategy.ClusterPermissions, 1)
	assert.Equal(t, clusterDocs[0]["rules"], normalize(t, strategy.ClusterPermissions[0].Rules), "bundle cluster RBAC is stale: run make bundle")
	var namespaced []any
	for _, f := range []string{"role.yaml", "leader_election_role.yaml"} {
		docs := readDocs(t, path("config", "rbac", f))
		require.Len(t, docs, 1)
		namespaced = append(namespaced, docs[0]["rules"].([]any)...)
	}
	require.Len(t, strategy.Permissions, 1)
	assert.ElementsMatch(t, namespaced, normalize(t, strategy.Permissions[0].Rules), "bundle namespaced RBAC is stale: run make bundle")

	var services []string
	for _, u := range b.Objects {
		if u.GetKind() == "Service" {
			services = append(services, u.GetName())
		}
		assert.NotEqual(t, "Secret", u.GetKind(), "sample Secrets must not ship in the bundle")
		assert.NotEqual(t, "Namespace", u.GetKind())
		assert.Empty(t, u.GetNamespace(), "%s/%s: OLM picks the namespace", u.GetKind(), u.GetName())
	}
	// OLM creates the webhook's Service itself (<deployment>-service); hack/bundle.sh drops the
	// one config/webhook feeds to operator-sdk.
	assert.Equal(t, []string{"dittofs-operator-controller-manager-metrics-service"}, services)
}

// catalogDocs returns every document under catalog/, grouped by schema.
func catalogDocs(t *testing.T) map[string][]map[string]any {
	t.Helper()
	bySchema := map[string][]map[string]any{}
	err := filepath.WalkDir(path("catalog"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ext := filepath.Ext(p)
		require.Contains(t, []string{".yaml", ".yml", ".json"}, ext, "unexpected file %s in catalog/", p)
		for _, doc := range readDocs(t, p) {
			schema, _ := doc["schema"].(string)
			require.NotEmpty(t, schema, "%s: document without schema", p)
			bySchema[schema] = append(bySchema[schema], doc)
		}
		return nil
	})
	require.NoError(t, err, "reading catalog/: run make catalog")
	return bySchema
}

// TestCatalogMatchesBundle: catalog/ parses, has one package, a channel holding the bundle with
// the bundle's upgrade edges, and
// a bundle whose objects are exactly the files in bundle/manifests (opm itself validates the
// catalog in hack/catalog.sh).
func TestCatalogMatchesBundle(t *testing.T) {
	b := loadBundle(t)
	docs := catalogDocs(t)

	require.Len(t, docs["olm.package"], 1)
	pkg := docs["olm.package"][0]
	annotations := bundleAnnotations(t)
	assert.Equal(t, packageName, pkg["name"])
	assert.Equal(t, annotations["operators.operatorframework.io.bundle.channel.default.v1"], pkg["defaultChannel"])
	svg, err := os.ReadFile(path("config", "manifests", "icon.svg"))
	require.NoError(t, err)
	assert.Equal(t, base64.StdEncoding.EncodeToString(svg), pkg["icon"].(map[string]any)["base64data"])

	require.Len(t, docs["olm.channel"], 1)
	ch := docs["olm.channel"][0]
	assert.Equal(t, packageName, ch["package"])
	assert.Equal(t, annotations["operators.operatorframework.io.bundle.channels.v1"], ch["name"])
	// The channel's upgrade edges are the bundle's: its olm.skipRange, and spec.replaces when
	// there is a previous release.
	entry := map[string]any{"name": csvName, "skipRange": b.CSV.Annotations["olm.skipRange"]}
	require.NotEmpty(t, entry["skipRange"], "the CSV has an olm.skipRange")
	if b.CSV.Spec.Replaces != "" {
		entry["replaces"] = b.CSV.Spec.Replaces
	}
	assert.Equal(t, []any{entry}, ch["entries"])

	require.Len(t, docs["olm.bundle"], 1)
	cb := docs["olm.bundle"][0]
	assert.Equal(t, csvName, cb["name"])
	assert.Equal(t, packageName, cb["package"])
	assert.Equal(t, bundleImage, cb["image"])

	var catalogImages []string
	for _, ri := range cb["relatedImages"].([]any) {
		catalogImages = append(catalogImages, ri.(map[string]any)["image"].(string))
	}
	assert.ElementsMatch(t, []string{operatorImage, dittofsImage, bundleImage}, catalogImages)

	var catalogObjects []string
	for _, p := range cb["properties"].([]any) {
		prop := p.(map[string]any)
		value := prop["value"].(map[string]any)
		switch prop["type"] {
		case "olm.package":
			assert.Equal(t, packageName, value["packageName"])
			assert.Equal(t, b.CSV.Spec.Version.String(), value["version"])
		case "olm.gvk":
			assert.Equal(t, map[string]any{"group": "dittofs.dittofs.com", "kind": "DittoServer", "version": "v1alpha1"}, value)
		case "olm.bundle.object":
			raw, err := base64.StdEncoding.DecodeString(value["data"].(string))
			require.NoError(t, err)
			var obj any
			require.NoError(t, json.Unmarshal(raw, &obj))
			out, err := json.Marshal(obj)
			require.NoError(t, err)
			catalogObjects = append(catalogObjects, string(out))
		default:
			t.Errorf("unexpected bundle property %v (olm.package.required / olm.gvk.required would be a hard dependency)", prop["type"])
		}
	}

	files, err := filepath.Glob(path("bundle", "manifests", "*.yaml"))
	require.NoError(t, err)
	var bundleObjects []string
	for _, f := range files {
		for _, doc := range readDocs(t, f) {
			out, err := json.Marshal(doc)
			require.NoError(t, err)
			bundleObjects = append(bundleObjects, string(out))
		}
	}
	sort.Strings(catalogObjects)
	sort.Strings(bundleObjects)
	assert.Equal(t, bundleObjects, catalogObjects, "catalog/ is stale: run make catalog")
}

// TestNoPublishedCredentials: the samples, and the alm-examples made from them, publish no
// credential. The quick start relies on the credentials the operator generates; a sample that
// needs a Secret says how to generate it (a command in its comments), never with literal values
// that everyone following the docs would share.
func TestNoPublishedCredentials(t *testing.T) {
	credentialKeys := map[string]bool{"password": true, "secret": true, "token": true, "secretaccesskey": true,
		"accesskeyid": true, "connection-string": true, "connectionstring": true, "stringdata": true, "data": true}
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, val := range v {
				if _, isString := val.(string); credentialKeys[strings.ToLower(k)] && (isString || k == "stringData" || k == "data") {
					t.Errorf("%s: key %q holds a literal value", where, k)
				}
				walk(where+"."+k, val)
			}
		case []any:
			for _, val := range v {
				walk(where, val)
			}
		}
	}
	files, err := filepath.Glob(path("config", "samples", "*.yaml"))
	require.NoError(t, err)
	for _, f := range files {
		for _, doc := range readDocs(t, f) {
			assert.NotEqual(t, "Secret", doc["kind"], "%s: a Secret with literal values; generate it with a command in the sample's comments instead", filepath.Base(f))
			walk(filepath.Base(f), doc)
		}
	}
	var examples []map[string]any
	require.NoError(t, json.Unmarshal([]byte(loadBundle(t).CSV.Annotations["alm-examples"]), &examples))
	for _, ex := range examples {
		assert.NotEqual(t, "Secret", ex["kind"], "alm-examples: a Secret")
		walk("alm-examples", normalize(t, ex))
	}

	// The quick start's sample (the one kubectl apply -k config/samples applies) references no
	// Secret at all: the operator generates them.
	basic := readDocs(t, path("config", "samples", "dittofs_v1alpha1_dittoserver.yaml"))
	require.Len(t, basic, 1)
	_, hasIdentity := basic[0]["spec"].(map[string]any)["identity"]
	assert.False(t, hasIdentity, "the basic sample brings its own credentials")
}
