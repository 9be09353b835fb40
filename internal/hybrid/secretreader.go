package hybrid

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// SecretReader reads the Secrets a server depends on, without asking the API server every
// reconcile:
//   - Secrets the operator labelled (the generated ones) come from the manager's cache (Cache);
//   - the user's Secrets, which that cache does not hold, are read through the API reader once
//     per change: the last copy of each is kept and served again while the metadata-only Secret
//     informer (Meta, set once the watch exists) reports the same resourceVersion. A changed
//     Secret has a new resourceVersion, so it is read again; its watch event also brings the
//     DittoServer back.
//
// Copies are dropped (Forget) when no server references the Secret any more.
type SecretReader struct {
	Cache client.Reader
	API   client.Reader
	Meta  client.Reader

	mu    sync.Mutex
	store map[client.ObjectKey]*corev1.Secret
}

// NewSecretReader reads from cache first, then through api.
func NewSecretReader(cache, api client.Reader) *SecretReader {
	return &SecretReader{Cache: cache, API: api, store: map[client.ObjectKey]*corev1.Secret{}}
}

// Get implements client.Reader for Secrets (other kinds go straight to the API reader).
func (r *SecretReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	secret, isSecret := obj.(*corev1.Secret)
	if !isSecret {
		return r.API.Get(ctx, key, obj, opts...)
	}
	if r.Cache != nil {
		err := r.Cache.Get(ctx, key, secret, opts...)
		if !apierrors.IsNotFound(err) {
			return err
		}
	}
	if r.Meta != nil {
		meta := &metav1.PartialObjectMetadata{}
		meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		if err := r.Meta.Get(ctx, key, meta); err == nil {
			r.mu.Lock()
			kept, ok := r.store[key]
			r.mu.Unlock()
			if ok && kept.ResourceVersion == meta.ResourceVersion {
				kept.DeepCopyInto(secret)
				return nil
			}
		}
	}
	fresh := &corev1.Secret{}
	if err := r.API.Get(ctx, key, fresh, opts...); err != nil {
		r.Forget(key)
		return err
	}
	if r.Meta != nil {
		// Without the metadata informer a kept copy could never be checked: keep none.
		r.mu.Lock()
		r.store[key] = fresh
		r.mu.Unlock()
	}
	fresh.DeepCopyInto(secret)
	return nil
}

// List implements client.Reader.
func (r *SecretReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return r.API.List(ctx, list, opts...)
}

// Forget drops the kept copy of a Secret.
func (r *SecretReader) Forget(key client.ObjectKey) {
	r.mu.Lock()
	delete(r.store, key)
	r.mu.Unlock()
}
