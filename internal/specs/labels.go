package specs

import (
	"k8s.io/apimachinery/pkg/labels"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// SelectorLabels select the server's pod.
func SelectorLabels(ds *v1alpha1.DittoServer) map[string]string {
	return map[string]string{LabelName: AppName, LabelInstance: ds.Name}
}

// CommonLabels go on every object the Go controller creates.
func CommonLabels(ds *v1alpha1.DittoServer, component string) map[string]string {
	l := SelectorLabels(ds)
	l[LabelPartOf] = PartOf
	l[LabelManagedBy] = ManagedBy
	if component != "" {
		l[LabelComponent] = component
	}
	return l
}

// OperatorObjects selects what the operator creates, Helm's chart objects included (Helm
// overwrites app.kubernetes.io/managed-by with "Helm"), and never Helm's release Secrets.
func OperatorObjects() labels.Selector {
	return labels.SelectorFromSet(labels.Set{LabelPartOf: PartOf})
}
