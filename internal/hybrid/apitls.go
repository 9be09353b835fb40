package hybrid

import (
	"context"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// ensureAPICertificate keeps the REST API's certificate in mode Operator: the Secret
// <name>-api-tls with a CA made for the server and a serving certificate it signed, renewed
// APICertRenewBefore its end (DittoFS reloads the mounted files, no restart). It returns when
// to look again (zero in the other modes). The Secret goes with the server (owner reference):
// it opens no data, and a server created again trusts a new CA.
func (r *Reconciler) ensureAPICertificate(ctx context.Context, ds *v1alpha1.DittoServer) (time.Duration, error) {
	if ds.Spec.APITLSMode() != v1alpha1.APITLSOperator {
		return 0, nil
	}
	name := specs.OperatorAPITLSSecretName(ds)
	labels := specs.CommonLabels(ds, "api-tls")
	now := time.Now()
	secret := &corev1.Secret{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: name}, secret)
	if apierrors.IsNotFound(err) {
		secret = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ds.Namespace, Labels: labels},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{},
		}
		if err := controllerutil.SetControllerReference(ds, secret, r.Scheme); err != nil {
			return 0, err
		}
		if err := r.issueAPICertificate(ds, secret.Data, now, true); err != nil {
			return 0, err
		}
		err = r.Client.Create(ctx, secret)
		if err == nil { // no event: an object of the server's own, like its StatefulSet
			return time.Until(now.Add(specs.APICertValidity - specs.APICertRenewBefore)), nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return 0, fmt.Errorf("creating Secret %s/%s: %w", ds.Namespace, name, err)
		}
		// There, but not in the cache: its labels were removed (put back below).
		secret = &corev1.Secret{}
		err = r.APIReader.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: name}, secret)
	}
	if err != nil {
		return 0, fmt.Errorf("reading Secret %s/%s: %w", ds.Namespace, name, err)
	}
	renew, renewAt := r.certificateRenewal(ds, secret, now)
	labelled := true
	for k, v := range labels {
		labelled = labelled && secret.Labels[k] == v
	}
	if !renew && labelled {
		return time.Until(renewAt), nil
	}
	newCA := !specs.ValidAPICA(secret.Data)
	updated := secret.DeepCopy()
	if updated.Data == nil {
		updated.Data = map[string][]byte{}
	}
	if updated.Labels == nil {
		updated.Labels = map[string]string{}
	}
	maps.Copy(updated.Labels, labels)
	if !renew {
		if err := r.Client.Update(ctx, updated); err != nil {
			return 0, fmt.Errorf("labelling Secret %s/%s: %w", ds.Namespace, name, err)
		}
		return time.Until(renewAt), nil
	}
	if err := r.issueAPICertificate(ds, updated.Data, now, newCA); err != nil {
		return 0, err
	}
	if err := r.Client.Update(ctx, updated); err != nil {
		return 0, fmt.Errorf("renewing the certificate in Secret %s/%s: %w", ds.Namespace, name, err)
	}
	if newCA {
		r.Recorder.Eventf(ds, corev1.EventTypeWarning, specs.EventDriftReverted,
			"Secret %s had no usable CA (edited outside the operator): made a new one; clients must trust its new ca.crt", name)
	} else {
		r.Recorder.Eventf(ds, corev1.EventTypeNormal, specs.EventAPICertificateRenewed,
			"Renewed the REST API's certificate in Secret %s (same CA); the server reloads it without a restart", name)
	}
	return time.Until(now.Add(specs.APICertValidity - specs.APICertRenewBefore)), nil
}

// validCertificate is a certificate Secret, at one revision, found valid until renewAt.
type validCertificate struct {
	uid             types.UID
	resourceVersion string
	renewAt         time.Time
}

// certificateRenewal is specs.APICertificateRenewal, kept per Secret revision: parsing the
// pairs and checking the signature is the costly part of a server's reconcile, which runs
// again on every status change of its StatefulSet.
func (r *Reconciler) certificateRenewal(ds *v1alpha1.DittoServer, secret *corev1.Secret, now time.Time) (bool, time.Time) {
	if kept, ok := r.validCert.Load(ds.UID); ok {
		v := kept.(validCertificate)
		if v.uid == secret.UID && v.resourceVersion == secret.ResourceVersion && now.Before(v.renewAt) {
			return false, v.renewAt
		}
	}
	renew, renewAt := specs.APICertificateRenewal(ds, r.ClusterDomain, secret.Data, now)
	if !renew && secret.ResourceVersion != "" {
		r.validCert.Store(ds.UID, validCertificate{uid: secret.UID, resourceVersion: secret.ResourceVersion, renewAt: renewAt})
	}
	return renew, renewAt
}

// issueAPICertificate writes a serving certificate into data, and a new CA first when asked.
func (r *Reconciler) issueAPICertificate(ds *v1alpha1.DittoServer, data map[string][]byte, now time.Time, newCA bool) error {
	if newCA {
		ca, key, err := specs.IssueAPICA(ds, now)
		if err != nil {
			return err
		}
		data[specs.APITLSCAKey], data[specs.APITLSCAKeyPK] = ca, key
	}
	cert, key, err := specs.IssueAPICertificate(ds, r.ClusterDomain, data[specs.APITLSCAKey], data[specs.APITLSCAKeyPK], now)
	if err != nil {
		return err
	}
	data[specs.APITLSCert], data[specs.APITLSKey] = cert, key
	return nil
}
