package specs

import (
	"testing"

	"github.com/stretchr/testify/assert"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

func TestGrownClaims(t *testing.T) {
	sts := func(class string, sizes ...string) *appsv1.StatefulSet {
		s := &appsv1.StatefulSet{}
		for i, size := range sizes {
			c := corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: []string{"metadata", "cache", "content"}[i]}}
			if class != "" {
				c.Spec.StorageClassName = ptr.To(class)
			}
			c.Spec.Resources.Requests = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}
			s.Spec.VolumeClaimTemplates = append(s.Spec.VolumeClaimTemplates, c)
		}
		return s
	}
	cases := map[string]struct {
		existing, desired *appsv1.StatefulSet
		grown             []string
		onlyGrowth        bool
	}{
		"unchanged":                {sts("a", "10Gi", "5Gi"), sts("a", "10Gi", "5Gi"), nil, true},
		"one grows":                {sts("a", "10Gi", "5Gi"), sts("a", "20Gi", "5Gi"), []string{"metadata"}, true},
		"same size, other unit":    {sts("a", "10Gi"), sts("a", "10240Mi"), nil, true},
		"smaller is not growth":    {sts("a", "10Gi"), sts("a", "5Gi"), nil, true},
		"class changed":            {sts("a", "10Gi"), sts("b", "20Gi"), nil, false},
		"a volume added":           {sts("a", "10Gi"), sts("a", "20Gi", "5Gi"), nil, false},
		"default class both sides": {sts("", "10Gi"), sts("", "11Gi"), []string{"metadata"}, true},
	}
	for name, c := range cases {
		grown, only := GrownClaims(c.existing, c.desired)
		assert.Equal(t, c.onlyGrowth, only, name)
		var names []string
		for n := range grown {
			names = append(names, n)
		}
		assert.ElementsMatch(t, c.grown, names, name)
	}
}

func TestSizeField(t *testing.T) {
	for tpl, field := range map[string]string{
		VolumeMetadata: "spec.storage.metadataSize", VolumeCache: "spec.storage.cacheSize",
		VolumeControlPlane: "spec.storage.controlPlaneSize", VolumeContent: "spec.storage.contentSize",
	} {
		assert.Equal(t, field, SizeField(tpl))
	}
}

func TestPlanVolumes(t *testing.T) {
	server := func(content string, s3 bool) *v1alpha1.DittoServer {
		ds := &v1alpha1.DittoServer{Spec: v1alpha1.DittoServerSpec{Storage: v1alpha1.StorageSpec{MetadataSize: "1Gi", ContentSize: content}}}
		if s3 {
			ds.Spec.S3 = &v1alpha1.S3Spec{Bucket: "b"}
		}
		return ds
	}
	cases := map[string]struct {
		ds         *v1alpha1.DittoServer
		withClaims []string
		volumes    []string
		store      string
	}{
		"local files on the cache volume":   {server("", false), nil, []string{"controlplane", "metadata", "cache"}, "cache"},
		"local files on the content volume": {server("50Gi", false), nil, []string{"controlplane", "metadata", "content"}, "content"},
		"cache in front of S3":              {server("", true), nil, []string{"controlplane", "metadata", "cache"}, "cache"},
		"content declared, files in S3":     {server("50Gi", true), nil, []string{"controlplane", "metadata", "cache"}, "cache"},
		"kept claims are mounted again": {server("50Gi", false), []string{"controlplane", "metadata", "cache", "content"},
			[]string{"controlplane", "metadata", "cache", "content"}, "content"},
		"a claim the spec has no size for is not": {server("", false), []string{"content"}, []string{"controlplane", "metadata", "cache"}, "cache"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := PlanVolumes(tc.ds, tc.withClaims)
			assert.Equal(t, tc.volumes, got)
			assert.Equal(t, tc.store, StoreVolume(tc.ds, got))
		})
	}
	assert.Equal(t, VolumeContent, StoreVolume(server("", true), []string{"controlplane", "metadata", "content"}),
		"the preferred volume is not mounted (fixed earlier): the other one")
}

func TestLocalStoreMaxSize(t *testing.T) {
	n, err := LocalStoreMaxSize("10Gi")
	assert.NoError(t, err)
	assert.Equal(t, int64(10<<30)/10*9, n)
	_, err = LocalStoreMaxSize("lots")
	assert.Error(t, err)
	assert.Equal(t, VolumeCache, VolumeOfPath("/data/cache/blocks"))
	assert.Equal(t, VolumeContent, VolumeOfPath("/tmp/test-123/pod/data/content/blocks"), "a test server's mapped path")
	assert.Equal(t, "", VolumeOfPath("/var/lib/blocks"))
}
