package specs

import (
	"strings"

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

// OperatorPodLabelKeys are the labels the operator sets on the DittoFS pod (its selector among
// them); spec.podLabels cannot set them.
var OperatorPodLabelKeys = []string{LabelName, LabelInstance, LabelPartOf, LabelManagedBy, LabelComponent}

// OperatorAnnotationPrefix prefixes the annotations the operator sets; spec.podAnnotations
// cannot set them.
const OperatorAnnotationPrefix = "dittofs.dittofs.com/"

// ReservedEnvName reports whether spec.env may not set name: DittoFS reads every DITTOFS_*
// variable as its configuration (owned by the spec and spec.chartValues.config), and HOME is the
// operator's.
func ReservedEnvName(name string) bool {
	return strings.HasPrefix(name, "DITTOFS_") || name == "HOME"
}

// withUserEntries returns the user's entries with the operator's over them: the operator's
// keys always win.
func withUserEntries(user, own map[string]string) map[string]string {
	if len(user) == 0 {
		return own
	}
	out := make(map[string]string, len(user)+len(own))
	for k, v := range user {
		out[k] = v
	}
	for k, v := range own {
		out[k] = v
	}
	return out
}
