package hybrid

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// SecretReader reads user Secrets, which are not in the manager's cache, without asking the API
// server every reconcile: it keeps the last copy of each Secret it read, and serves it again
// while the metadata-only Secret informer (Meta, set once the watch exists) reports the same
// resourceVersion. A changed Secret has a new resourceVersion, so it is read again; its watch
// event also brings the DittoServer back. Only Secrets a DittoServer references are kept.
type SecretReader struct {
	API  client.Reader
	Meta client.Reader

	mu    sync.Mutex
	store map[client.ObjectKey]*corev1.Secret
}

// NewSecretReader reads through api.
func NewSecretReader(api client.Reader) *SecretReader {
	return &SecretReader{API: api, store: map[client.ObjectKey]*corev1.Secret{}}
}

// Get implements client.Reader for Secrets (other kinds go straight to the API reader).
func (r *SecretReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	secret, isSecret := obj.(*corev1.Secret)
	if !isSecret || r.Meta == nil {
		return r.API.Get(ctx, key, obj, opts...)
	}
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
	fresh := &corev1.Secret{}
	if err := r.API.Get(ctx, key, fresh, opts...); err != nil {
		r.mu.Lock()
		delete(r.store, key)
		r.mu.Unlock()
		return err
	}
	r.mu.Lock()
	r.store[key] = fresh
	r.mu.Unlock()
	fresh.DeepCopyInto(secret)
	return nil
}

// List implements client.Reader.
func (r *SecretReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return r.API.List(ctx, list, opts...)
}

// Forget drops the copies of Secrets no DittoServer references any more.
func (r *SecretReader) Forget(key client.ObjectKey) {
	r.mu.Lock()
	delete(r.store, key)
	r.mu.Unlock()
}
