package hybrid

import "k8s.io/apimachinery/pkg/labels"

func managedBySelector() labels.Selector {
	return labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy})
}
