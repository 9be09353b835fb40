package chaos

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Helm's Secret storage driver: Secret sh.helm.release.v1.<release>.v<version>, labels
// owner=helm, name, status, version; data "release" = base64(gzip(JSON release)).
const releaseSecretPrefix = "sh.helm.release.v1."

// releaseInfo is one stored revision of a Helm release.
type releaseInfo struct {
	secret, status string
	version        int
}

func (ri releaseInfo) String() string { return fmt.Sprintf("v%d:%s", ri.version, ri.status) }

// releases groups the release Secrets by release name, each list sorted by version.
func releases(secrets []corev1.Secret) map[string][]releaseInfo {
	out := map[string][]releaseInfo{}
	for i := range secrets {
		s := &secrets[i]
		if s.Labels["owner"] != "helm" || s.DeletionTimestamp != nil {
			continue
		}
		v, _ := strconv.Atoi(s.Labels["version"])
		out[s.Labels["name"]] = append(out[s.Labels["name"]], releaseInfo{secret: s.Name, status: s.Labels["status"], version: v})
	}
	for _, list := range out {
		sort.Slice(list, func(i, j int) bool { return list[i].version < list[j].version })
	}
	return out
}

// pendingReleaseSecrets counts the release Secrets in a pending-* state.
func (r *run) pendingReleaseSecrets() (int, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	list := &corev1.SecretList{}
	if err := r.k8s.List(ctx, list, client.InNamespace(namespace), client.MatchingLabels{"owner": "helm"}); err != nil {
		return 0, err
	}
	n := 0
	for _, rels := range releases(list.Items) {
		for _, rel := range rels {
			if len(rel.status) > 8 && rel.status[:8] == "pending-" {
				n++
			}
		}
	}
	return n, nil
}

func decodeRelease(data []byte) (map[string]any, error) {
	raw, err := base64.StdEncoding.DecodeString(string(data))
	if err != nil {
		return nil, err
	}
	if len(raw) > 2 && raw[0] == 0x1f && raw[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		if raw, err = io.ReadAll(zr); err != nil {
			return nil, err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	rel := map[string]any{}
	return rel, dec.Decode(&rel)
}

func encodeRelease(rel map[string]any) ([]byte, error) {
	raw, err := json.Marshal(rel)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return []byte(base64.StdEncoding.EncodeToString(buf.Bytes())), nil
}

// latestRelease reads the release Secret of the highest revision of a release.
func (r *run) latestRelease(name string) (*corev1.Secret, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	list := &corev1.SecretList{}
	if err := r.k8s.List(ctx, list, client.InNamespace(namespace), client.MatchingLabels{"owner": "helm", "name": name}); err != nil {
		return nil, err
	}
	var latest *corev1.Secret
	best := -1
	for i := range list.Items {
		if v, _ := strconv.Atoi(list.Items[i].Labels["version"]); v > best {
			best, latest = v, &list.Items[i]
		}
	}
	if latest == nil {
		return nil, fmt.Errorf("release %s has no Secret", name)
	}
	return latest, nil
}

// leavePending makes release name look like an operator was killed in the middle of an action
// (status pending-install, pending-upgrade or pending-rollback, last deployed now, before the
// next operator starts). In place: the latest revision's Secret is rewritten. As a new
// revision (a killed upgrade): a copy of the latest revision is stored as the next one, the
// latest staying deployed, as Helm leaves it.
func (r *run) leavePending(name, status string, newRevision bool) (string, error) {
	sec, err := r.latestRelease(name)
	if err != nil {
		return "", err
	}
	rel, err := decodeRelease(sec.Data["release"])
	if err != nil {
		return "", fmt.Errorf("decoding %s: %w", sec.Name, err)
	}
	info, ok := rel["info"].(map[string]any)
	if !ok {
		return "", fmt.Errorf("%s: no info in the release", sec.Name)
	}
	info["status"] = status
	info["last_deployed"] = time.Now().UTC().Format(time.RFC3339Nano)
	info["description"] = "left " + status + " by the fault suite"
	out := sec.DeepCopy()
	if newRevision {
		v, _ := strconv.Atoi(sec.Labels["version"])
		v++
		rel["version"] = v
		out = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: sec.Namespace, Name: fmt.Sprintf("%s%s.v%d", releaseSecretPrefix, name, v), Labels: map[string]string{}},
			Type:       sec.Type,
		}
		for k, val := range sec.Labels {
			out.Labels[k] = val
		}
		out.Labels["version"] = strconv.Itoa(v)
	}
	out.Labels["status"] = status
	data, err := encodeRelease(rel)
	if err != nil {
		return "", err
	}
	out.Data = map[string][]byte{"release": data}
	ctx, cancel := r.ctx()
	defer cancel()
	if newRevision {
		err = r.k8s.Create(ctx, out)
	} else {
		err = r.k8s.Update(ctx, out)
	}
	return out.Name, err
}
