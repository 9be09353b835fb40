package helmext

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
)

// secretWriter writes release Secrets as Helm's Secrets driver does (same name, type, labels and
// encoding: base64 of gzipped JSON), with its gzip writers reused. Helm's driver makes a new
// gzip writer per release, and its compressor state (~650 KB) was 11 % of everything the
// operator allocated while 1000 servers converged. Reads stay with Helm's driver.
type secretWriter struct {
	secrets corev1client.SecretInterface
	now     func() time.Time
}

// gzipWriters are reused gzip writers at Helm's level (best compression).
var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.BestCompression)
	return w
}}

// encodeRelease is Helm's release encoding: base64(gzip(JSON)).
func encodeRelease(r *release.Release) ([]byte, error) {
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(w)
	w.Reset(&buf)
	if _, err := w.Write(raw); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	out := make([]byte, base64.StdEncoding.EncodedLen(buf.Len()))
	base64.StdEncoding.Encode(out, buf.Bytes())
	return out, nil
}

// secret builds the release Secret as Helm's Create, Update and newSecretsObject do: createdAt
// or modifiedAt (stamp), the release's own labels, then name, owner, status and version.
func (w *secretWriter) secret(key string, r *release.Release, stamp string) (*corev1.Secret, error) {
	data, err := encodeRelease(r)
	if err != nil {
		return nil, err
	}
	labels := make(map[string]string, len(r.Labels)+5)
	labels[stamp] = strconv.FormatInt(w.now().Unix(), 10) // a label of the release's own wins, as in Helm
	for k, v := range r.Labels {
		labels[k] = v
	}
	labels["name"] = r.Name
	labels["owner"] = "helm"
	labels["status"] = r.Info.Status.String()
	labels["version"] = strconv.Itoa(r.Version)
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: key, Labels: labels},
		Type:       "helm.sh/release.v1",
		Data:       map[string][]byte{"release": data},
	}, nil
}

// Create is driver.Secrets.Create: ErrReleaseExists when the Secret exists.
func (w *secretWriter) Create(key string, r *release.Release) error {
	s, err := w.secret(key, r, "createdAt")
	if err != nil {
		return fmt.Errorf("create: failed to encode release %q: %w", r.Name, err)
	}
	if _, err := w.secrets.Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return driver.ErrReleaseExists
		}
		return fmt.Errorf("create: failed to create: %w", err)
	}
	return nil
}

// Update is driver.Secrets.Update.
func (w *secretWriter) Update(key string, r *release.Release) error {
	s, err := w.secret(key, r, "modifiedAt")
	if err != nil {
		return fmt.Errorf("update: failed to encode release %q: %w", r.Name, err)
	}
	if _, err := w.secrets.Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update: failed to update: %w", err)
	}
	return nil
}
