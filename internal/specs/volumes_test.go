package specs

import (
	"testing"

	"github.com/stretchr/testify/assert"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
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
