package controlplane

import "testing"

// TestEndpointOf: the endpoint label of dittofs_api_request_duration_seconds is one of a few
// values whatever the path holds (share and user names never become labels).
func TestEndpointOf(t *testing.T) {
	for path, want := range map[string]string{
		"/api/v1/auth/login":                       "auth",
		"/api/v1/users/dittofs-operator/password":  "users",
		"/api/v1/shares/%2Fexport":                 "shares",
		"/api/v1/shares/%2Fexport/snapshot-policy": "shares",
		"/api/v1/snapshot-policies":                "snapshot-policies",
		"/api/v1/store/block/remote/s3":            "store",
		"/api/v1/adapters/smb/settings":            "adapters",
		"/api/v1/somethingnew/x":                   "other",
		"/health":                                  "other",
		"/api/v2/users":                            "other",
	} {
		if got := endpointOf(path); got != want {
			t.Errorf("endpointOf(%q) = %q, want %q", path, got, want)
		}
	}
}
