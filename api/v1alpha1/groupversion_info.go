// Package v1alpha1 contains the DittoServer API (group dittofs.dittofs.com, version v1alpha1).
// +kubebuilder:object:generate=true
// +groupName=dittofs.dittofs.com
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of the DittoServer API.
	GroupVersion = schema.GroupVersion{Group: "dittofs.dittofs.com", Version: "v1alpha1"}

	// SchemeBuilder registers the API types with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// DittoServerKind is the kind of the primary resource.
const DittoServerKind = "DittoServer"

// GroupVersionKind returns the GVK of DittoServer.
func GroupVersionKind() schema.GroupVersionKind { return GroupVersion.WithKind(DittoServerKind) }
