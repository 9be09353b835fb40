// Package conformance runs the real DittoFS v0.29.0 server on exactly what the operator renders:
// the ConfigMap from the embedded chart (internal/specs.Renderer) and the container of the
// StatefulSet builder (internal/specs.DesiredStatefulSet), with the container's env resolved
// against the case's Secrets and each volume mount mapped to a temporary directory. Every dfs
// runs in its own network namespace, so the pod's 0.0.0.0 binds and fixed adapter ports never
// collide. docs/ARCHITECTURE.md, "The DittoFS contract", lists what it pins. Run it with `go test ./test/conformance/`.
package conformance
