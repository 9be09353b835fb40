package hybrid

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

type memoKey struct{}

type secretMemo struct {
	mu      sync.Mutex
	entries map[client.ObjectKey]memoEntry
}

type memoEntry struct {
	secret *corev1.Secret
	err    error
}

// withSecretMemo gives a reconcile its own memo of Secret reads, so the guard's checks and the
// Secret resolution read each user Secret from the API server once per reconcile.
func withSecretMemo(ctx context.Context) context.Context {
	return context.WithValue(ctx, memoKey{}, &secretMemo{entries: map[client.ObjectKey]memoEntry{}})
}

// memoReader reads Secrets through Inner, remembering results in the context's memo (if any).
type memoReader struct {
	Inner client.Reader
}

func (m memoReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	secret, isSecret := obj.(*corev1.Secret)
	memo, _ := ctx.Value(memoKey{}).(*secretMemo)
	if !isSecret || memo == nil {
		return m.Inner.Get(ctx, key, obj, opts...)
	}
	memo.mu.Lock()
	e, ok := memo.entries[key]
	memo.mu.Unlock()
	if !ok {
		fresh := &corev1.Secret{}
		err := m.Inner.Get(ctx, key, fresh, opts...)
		e = memoEntry{secret: fresh, err: err}
		memo.mu.Lock()
		memo.entries[key] = e
		memo.mu.Unlock()
	}
	if e.err != nil {
		return e.err
	}
	e.secret.DeepCopyInto(secret)
	return nil
}

func (m memoReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return m.Inner.List(ctx, list, opts...)
}
