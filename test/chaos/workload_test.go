package chaos

import (
	"context"
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// maxGrowths bounds the volume expansions per server (each re-creates the StatefulSet).
const maxGrowths = 4

// server is one DittoServer name of the mix: a fixed profile, and what the workload last
// asked for. Only the workload goroutine and the main goroutine with the workload paused (the
// gate's write lock) touch it.
type server struct {
	name string
	// userSecrets: identity from the user's own Secrets (made by the suite); otherwise the operator generates
	// <name>-jwt-secret and <name>-admin-credentials.
	userSecrets bool
	// deleteData: spec.storage.deleteWithServer (PVCs and generated credentials go with it).
	deleteData bool
	// percona: spec.percona.enabled; perconaDelete: spec.percona.deleteWithServer.
	percona, perconaDelete bool

	// desired values, kept across a deletion (a re-created server is the same manifest)
	nfsPort      int32
	metrics      bool
	metadataSize string
	growths      int

	wantExists bool
	// unsure: the last write's outcome is unknown (the call failed without an API status); read
	// back before the next check.
	unsure                              bool
	creates, updates, deletes, failures int
}

func (s *server) String() string {
	var p []string
	if s.userSecrets {
		p = append(p, "user Secrets")
	} else {
		p = append(p, "generated credentials")
	}
	if s.deleteData {
		p = append(p, "deleteWithServer")
	}
	if s.percona {
		p = append(p, "Percona")
		if s.perconaDelete {
			p = append(p, "percona.deleteWithServer")
		}
	}
	return s.name + " (" + strings.Join(p, ", ") + ")"
}

// profiles is the mix: every third server uses the user's own Secrets, the others generated
// credentials; servers 1 and 4 opt in to deleteWithServer; with the Percona CRD, the last server
// runs on Percona (cluster kept) and, from 6 servers, the one before it too (cluster deleted with
// the server).
func profiles(n int, percona bool) []*server {
	var out []*server
	for i := 0; i < n; i++ {
		s := &server{name: fmt.Sprintf("chaos-%d", i), userSecrets: i%3 == 0, deleteData: i == 1 || i == 4,
			nfsPort: 12049, metadataSize: "10Gi"}
		if percona && i == n-1 {
			s.percona = true
		}
		if percona && n >= 6 && i == n-2 {
			s.percona, s.perconaDelete = true, true
		}
		out = append(out, s)
	}
	return out
}

func (r *run) serverByName(name string) *server {
	for _, s := range r.servers {
		if s.name == name {
			return s
		}
	}
	return nil
}

// workload runs until stop is closed: every 150-900 ms one random operation on one random
// server, each under the gate's read lock (a pause waits for the one in flight).
func (r *run) workload(rng *rand.Rand, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		select {
		case <-stop:
			return
		case <-time.After(time.Duration(150+rng.Intn(750)) * time.Millisecond):
		}
		r.gate.RLock()
		if s := r.servers[rng.Intn(len(r.servers))]; !r.setAside[s.name] {
			r.operate(rng, s)
		}
		r.gate.RUnlock()
	}
}

// operate does one operation: create a server that is gone; update (NFS port, metrics on/off,
// a larger metadata volume) or delete one that exists.
func (r *run) operate(rng *rand.Rand, s *server) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !s.wantExists {
		if rng.Intn(10) < 7 {
			r.create(ctx, s)
		}
		return
	}
	switch p := rng.Intn(100); {
	case p < 35:
		port := int32(12049 + rng.Intn(12))
		r.update(ctx, s, func(ds *v1alpha1.DittoServer) { ds.Spec.NFSPort = ptr.To(port) }, func() { s.nfsPort = port })
	case p < 60:
		on := !s.metrics
		r.update(ctx, s, func(ds *v1alpha1.DittoServer) { ds.Spec.Metrics = &v1alpha1.MetricsSpec{Enabled: ptr.To(on)} }, func() { s.metrics = on })
	case p < 75:
		if s.growths >= maxGrowths {
			return
		}
		size := grow(s.metadataSize)
		r.update(ctx, s, func(ds *v1alpha1.DittoServer) { ds.Spec.Storage.MetadataSize = size }, func() { s.metadataSize = size; s.growths++ })
	default:
		r.deleteServer(ctx, s)
	}
}

func (r *run) create(ctx context.Context, s *server) {
	err := r.k8s.Create(ctx, r.newServer(s))
	switch {
	case err == nil:
		s.wantExists = true
		s.creates++
	case apierrors.IsAlreadyExists(err):
		// still terminating (its finalizers wait for the operator): a user retries later
	default:
		r.failed(s, "create", err)
	}
}

func (r *run) deleteServer(ctx context.Context, s *server) {
	err := r.k8s.Delete(ctx, &v1alpha1.DittoServer{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: s.name}})
	switch {
	case err == nil:
		s.wantExists = false
		s.deletes++
	case apierrors.IsNotFound(err):
		s.wantExists = false
		r.surprise(s.name, "gone before the workload deleted it")
	default:
		r.failed(s, "delete", err)
	}
}

// update applies mutate to the live server (retrying conflicts) and records the new desired
// value with done.
func (r *run) update(ctx context.Context, s *server, mutate func(*v1alpha1.DittoServer), done func()) {
	for i := 0; i < 3; i++ {
		ds := &v1alpha1.DittoServer{}
		if err := r.k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: s.name}, ds); err != nil {
			if apierrors.IsNotFound(err) {
				s.wantExists = false
				r.surprise(s.name, "gone before the workload deleted it")
			}
			r.failed(s, "get", err)
			return
		}
		if ds.DeletionTimestamp != nil {
			return
		}
		mutate(ds)
		err := r.k8s.Update(ctx, ds)
		switch {
		case err == nil:
			done()
			s.updates++
			return
		case apierrors.IsConflict(err):
			continue
		default:
			r.failed(s, "update", err)
			return
		}
	}
}

// surprise records something the workload saw that must not happen (reported as a violation).
func (r *run) surprise(server, msg string) {
	r.surpriseMu.Lock()
	defer r.surpriseMu.Unlock()
	r.surprises = append(r.surprises, violation{server: server, data: true, msg: msg})
}

// failed counts a failed operation; one without an API status (a timeout, a broken
// connection) may have happened: the server is read back before the next check.
func (r *run) failed(s *server, op string, err error) {
	s.failures++
	if _, ok := err.(apierrors.APIStatus); !ok && !apierrors.IsNotFound(err) {
		s.unsure = true
	}
	r.logf("workload: %s %s: %v", op, s.name, err)
}

// resync reads back the servers whose last operation is unknown (workload paused).
func (r *run) resync() {
	for _, s := range r.servers {
		if !s.unsure {
			continue
		}
		ctx, cancel := r.ctx()
		ds := &v1alpha1.DittoServer{}
		err := r.k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: s.name}, ds)
		cancel()
		switch {
		case apierrors.IsNotFound(err):
			s.wantExists = false
		case err != nil:
			continue
		default:
			s.wantExists = ds.DeletionTimestamp == nil
			s.nfsPort = ds.Spec.NFSServicePort()
			s.metrics = ds.Spec.MetricsEnabled()
			s.metadataSize = ds.Spec.Storage.MetadataSize
		}
		s.unsure = false
	}
}

// grow adds 1Gi to a size.
func grow(size string) string {
	q := resource.MustParse(size)
	gi := q.Value() >> 30
	return strconv.FormatInt(gi+1, 10) + "Gi"
}

// workloadStats sums the workload's operations.
type workloadStats struct {
	Creates  int `json:"creates"`
	Updates  int `json:"updates"`
	Deletes  int `json:"deletes"`
	Failures int `json:"failures"`
}

func (r *run) workloadStats() workloadStats {
	var w workloadStats
	for _, s := range r.servers {
		w.Creates += s.creates
		w.Updates += s.updates
		w.Deletes += s.deletes
		w.Failures += s.failures
	}
	return w
}
