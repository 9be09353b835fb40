//go:build linux && !amd64 && !arm64

package conformance

// sysSetns is unknown on this architecture: the suite uses its fallback (no network namespaces).
const sysSetns = -1
