package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// prepare creates the namespaces with the benchmark's Secrets, starts the benchmark's watches (with
// the timeline of the first server) and, with BENCH_TRACE, the tracer the operator will talk
// through. Teardown closes the tracker and the tracer.
func (br *benchRun) prepare(ctx context.Context) error {
	res := br.res
	servers, err := br.prepareNamespaces(ctx, br.k8s, res.N, res.Namespaces)
	if err != nil {
		return fmt.Errorf("namespaces: %w", err)
	}
	br.servers = servers
	trk := newTracker()
	br.trk = trk
	br.onTeardown(trk.close)
	runStart := time.Now()
	timeline := br.outFile("timeline.log")
	if err := trk.followTo(servers[0].String(), timeline, runStart); err != nil {
		return fmt.Errorf("timeline: %w", err)
	}
	res.Logs = append(res.Logs, timeline)
	if err := startWatches(ctx, br.restCfg, br.sch, trk); err != nil {
		return fmt.Errorf("watches: %w", err)
	}

	br.opKubeconfig = br.c.kubeconfig
	if br.cfg.Trace {
		if err := br.startTracing(runStart); err != nil {
			return err
		}
	}
	br.kcmPort, _ = br.c.componentPort("kube-controller-manager")
	br.schedPort, _ = br.c.componentPort("kube-scheduler")
	return nil
}

// startTracing starts the tracer with its request log and points the operator's kubeconfig at
// it.
func (br *benchRun) startTracing(runStart time.Time) error {
	res := br.res
	tr, err := startTracer(br.restCfg)
	if err != nil {
		return fmt.Errorf("tracer: %w", err)
	}
	br.tr = tr
	br.onTeardown(tr.close)
	reqLog := br.outFile("requests.log")
	if err := tr.logTo(reqLog, runStart); err != nil {
		return fmt.Errorf("request log: %w", err)
	}
	res.Logs = append(res.Logs, reqLog)
	opKubeconfig := br.outFile("tracer.kubeconfig")
	br.opKubeconfig = opKubeconfig
	if err := tr.writeKubeconfig(opKubeconfig); err != nil {
		return fmt.Errorf("tracer kubeconfig: %w", err)
	}
	br.onTeardown(func() { _ = os.Remove(opKubeconfig) })
	return nil
}

// prepareNamespaces creates the namespaces with the benchmark's Secrets and returns the keys of the
// servers to create (round-robin over the namespaces).
func (b *bench) prepareNamespaces(ctx context.Context, k8s client.Client, n, nns int) ([]types.NamespacedName, error) {
	secrets, err := benchSecrets()
	if err != nil {
		return nil, err
	}
	for i := 0; i < nns; i++ {
		ns := nsName(n, i)
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return nil, err
		}
		for _, s := range secrets {
			s := s.DeepCopy()
			s.Namespace = ns
			if err := k8s.Create(ctx, s); err != nil {
				return nil, err
			}
		}
	}
	// Pods need the namespace's default ServiceAccount (kube-controller-manager creates it).
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < nns; i++ {
		for {
			err := k8s.Get(ctx, types.NamespacedName{Namespace: nsName(n, i), Name: "default"}, &corev1.ServiceAccount{})
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("no default ServiceAccount in %s after 60 s: %w", nsName(n, i), err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	keys := make([]types.NamespacedName, n)
	for j := 0; j < n; j++ {
		keys[j] = types.NamespacedName{Namespace: nsName(n, j%nns), Name: fmt.Sprintf("ds-%03d", j)}
	}
	return keys, nil
}

func nsName(n, i int) string { return fmt.Sprintf("bench-n%d-%02d", n, i) }

// The Secrets every benchmark server references (the sample brings none: a user's server
// would have generated ones).
const (
	benchJWTSecret   = "bench-jwt-secret"
	benchAdminSecret = "bench-admin-secret"
)

// benchSecrets are random credentials for the benchmark's namespaces.
func benchSecrets() ([]*corev1.Secret, error) {
	jwt, admin := make([]byte, 36), make([]byte, 18)
	for _, b := range [][]byte{jwt, admin} {
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
	}
	return []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: benchJWTSecret}, StringData: map[string]string{"secret": base64.StdEncoding.EncodeToString(jwt)}},
		{ObjectMeta: metav1.ObjectMeta{Name: benchAdminSecret}, StringData: map[string]string{"password": base64.StdEncoding.EncodeToString(admin)}},
	}, nil
}
