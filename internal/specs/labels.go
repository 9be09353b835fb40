package hybrid

import "k8s.io/apimachinery/pkg/labels"

// operatorObjects selects what the operator creates, Helm's chart objects included (Helm
// overwrites app.kubernetes.io/managed-by with "Helm"), and never Helm's release Secrets.
func operatorObjects() labels.Selector {
	return labels.SelectorFromSet(labels.Set{LabelPartOf: PartOf})
}
