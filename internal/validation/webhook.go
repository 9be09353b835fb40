package validation

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// WebhookPath is where the validating webhook is served.
const WebhookPath = "/validate-dittofs-dittofs-com-v1alpha1-dittoserver"

// +kubebuilder:webhook:path=/validate-dittofs-dittofs-com-v1alpha1-dittoserver,mutating=false,failurePolicy=fail,sideEffects=None,groups=dittofs.dittofs.com,resources=dittoservers,verbs=create;update,versions=v1alpha1,name=vdittoserver.dittofs.com,admissionReviewVersions=v1,timeoutSeconds=10
// StorageClasses are read (whether a class can expand) under the operator's cluster-scoped
// role: its rules are in main.go.

// dittoServerWebhook answers admission requests with the checks that need cluster state. It
// is optional: without it the reconciler's guard reports the same findings as conditions.
type dittoServerWebhook struct {
	validator *Validator
	// namespaces the operator watches (WATCH_NAMESPACE); empty means all.
	namespaces []string
}

// SetupWebhook registers the validating webhook with the manager's webhook server. With
// namespaces, servers elsewhere are admitted unchecked: another operator instance may watch
// them, and this one's RBAC may not reach their Secrets. (OLM scopes the webhook to the
// OperatorGroup's namespaces itself; a kustomize install registers it for every namespace.)
func SetupWebhook(mgr ctrl.Manager, v *Validator, namespaces []string) error {
	return ctrl.NewWebhookManagedBy(mgr, &v1alpha1.DittoServer{}).
		WithValidator(&dittoServerWebhook{validator: v, namespaces: namespaces}).
		Complete()
}

func (w *dittoServerWebhook) ValidateCreate(ctx context.Context, ds *v1alpha1.DittoServer) (admission.Warnings, error) {
	return w.validate(ctx, ds)
}

func (w *dittoServerWebhook) ValidateUpdate(ctx context.Context, _, ds *v1alpha1.DittoServer) (admission.Warnings, error) {
	if !ds.DeletionTimestamp.IsZero() {
		return nil, nil // never block finalizer removal
	}
	return w.validate(ctx, ds)
}

func (w *dittoServerWebhook) ValidateDelete(context.Context, *v1alpha1.DittoServer) (admission.Warnings, error) {
	return nil, nil
}

func (w *dittoServerWebhook) validate(ctx context.Context, ds *v1alpha1.DittoServer) (admission.Warnings, error) {
	if len(w.namespaces) > 0 && !slices.Contains(w.namespaces, ds.Namespace) {
		return admission.Warnings{fmt.Sprintf(
			"namespace %s is not watched by the DittoFS operator answering this webhook (WATCH_NAMESPACE=%s): this server is not checked, and is reconciled only by an operator that watches %s",
			ds.Namespace, strings.Join(w.namespaces, ","), ds.Namespace)}, nil
	}
	f, err := w.validator.Validate(ctx, ds)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if len(f.Errors) == 0 {
		return f.Warnings, nil
	}
	var errs field.ErrorList
	for _, e := range f.Errors {
		path, msg := splitField(e)
		errs = append(errs, &field.Error{Type: field.ErrorTypeInvalid, Field: path, BadValue: field.OmitValueType{}, Detail: msg})
	}
	return f.Warnings, apierrors.NewInvalid(v1alpha1.GroupVersion.WithKind(v1alpha1.DittoServerKind).GroupKind(), ds.Name, errs)
}

// splitField splits "spec.x.y: message" into the path and the message.
func splitField(msg string) (string, string) {
	first := strings.Fields(msg)
	if len(first) > 0 && strings.HasPrefix(first[0], "spec.") {
		path := strings.TrimSuffix(first[0], ":")
		return path, strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(msg, first[0]), ":"))
	}
	return "spec", msg
}
