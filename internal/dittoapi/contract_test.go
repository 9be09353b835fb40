package dittoapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dittofs/dittofs-operator/internal/dittoapi"
	"github.com/dittofs/dittofs-operator/internal/dittoapi/dfstest"
)

// TestContract pins the real DittoFS v0.29.0 answers the operator relies on: status codes,
// problem bodies, the default adapters, the role model and store/share shapes.
func TestContract(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real dfs")
	}
	s := dfstest.Start(t)
	ctx := context.Background()
	anon := dittoapi.New(s.URL, nil)

	// Bad credentials: 401 problem+json.
	_, err := anon.Login(ctx, "admin", "wrong")
	require.Error(t, err)
	assert.True(t, dittoapi.IsAuth(err))
	assert.True(t, dittoapi.IsUnauthorized(err))
	assert.Equal(t, "Invalid username or password", dittoapi.MessageOf(err))
	// No token: 401 plain text from the middleware.
	_, err = anon.ListShares(ctx)
	assert.Equal(t, http.StatusUnauthorized, dittoapi.StatusOf(err))
	assert.Equal(t, "Authorization header required", dittoapi.MessageOf(err))

	admin := s.Admin(t)
	ads, err := admin.ListAdapters(ctx)
	require.NoError(t, err)
	ports := map[string]int{}
	for _, a := range ads {
		ports[a.Type] = a.Port
		assert.True(t, a.Enabled, a.Type)
	}
	assert.Equal(t, map[string]int{"nfs": 12049, "smb": 1445}, ports, "default adapters of a first boot")

	_, err = admin.GetShare(ctx, "/nope")
	assert.True(t, dittoapi.IsNotFound(err))
	assert.Equal(t, "Share not found", dittoapi.MessageOf(err))
	_, err = admin.GetBlockStore(ctx, dittoapi.BlockRemote, "nope")
	assert.True(t, dittoapi.IsNotFound(err), "%v", err)
	_, err = admin.GetMetadataStore(ctx, "nope")
	assert.True(t, dittoapi.IsNotFound(err), "%v", err)
	_, err = admin.GetUser(ctx, "nope")
	assert.True(t, dittoapi.IsNotFound(err), "%v", err)

	// Stores and a share; a second create conflicts.
	dir := t.TempDir()
	_, err = admin.CreateMetadataStore(ctx, "meta", "badger", map[string]any{"path": dir + "/meta"})
	require.NoError(t, err)
	_, err = admin.CreateBlockStore(ctx, dittoapi.BlockLocal, "local", "fs", map[string]any{"path": dir + "/blocks"})
	require.NoError(t, err)
	_, err = admin.CreateBlockStore(ctx, dittoapi.BlockLocal, "local", "fs", map[string]any{"path": dir + "/blocks"})
	assert.True(t, dittoapi.IsConflict(err), "%v", err)
	assert.Equal(t, "Block store already exists", dittoapi.MessageOf(err))
	sh, err := admin.CreateShare(ctx, dittoapi.CreateShareRequest{Name: "/export", MetadataStoreID: "meta", LocalBlockStore: "local"})
	require.NoError(t, err)
	assert.Equal(t, "/export", sh.Name)
	got, err := admin.GetShare(ctx, "/export")
	require.NoError(t, err)
	assert.Nil(t, got.RemoteBlockStoreID)

	// An S3 store without credentials is rejected with a 400 naming the key.
	_, err = admin.CreateBlockStore(ctx, dittoapi.BlockRemote, "s3", "s3", map[string]any{"bucket": "b"})
	assert.Equal(t, http.StatusBadRequest, dittoapi.StatusOf(err), "%v", err)
	assert.Contains(t, dittoapi.MessageOf(err), "access_key_id")
	// A loopback endpoint needs allow_private_endpoint (SSRF guard).
	_, err = admin.CreateBlockStore(ctx, dittoapi.BlockRemote, "s3", "s3", map[string]any{
		"bucket": "b", "region": "us-east-1", "endpoint": "http://127.0.0.1:1", "access_key_id": "a", "secret_access_key": "s"})
	assert.Equal(t, http.StatusBadRequest, dittoapi.StatusOf(err), "%v", err)
	assert.Contains(t, dittoapi.MessageOf(err), "allow_private_endpoint")

	// Role model: an "operator" user may list adapters but not touch stores; an admin user
	// created through the API must change its password before anything else.
	_, err = admin.CreateUser(ctx, dittoapi.CreateUserRequest{Username: "op", Password: "op-password-1", Role: "operator"})
	require.NoError(t, err)
	_, err = admin.CreateUser(ctx, dittoapi.CreateUserRequest{Username: "op", Password: "op-password-1", Role: "operator"})
	assert.True(t, dittoapi.IsConflict(err), "%v", err)
	op := dittoapi.New(s.URL, nil)
	_, err = op.Login(ctx, "op", "op-password-1")
	require.NoError(t, err)
	_, err = op.ListAdapters(ctx)
	require.NoError(t, err)
	_, err = op.GetBlockStore(ctx, dittoapi.BlockLocal, "local")
	assert.Equal(t, http.StatusForbidden, dittoapi.StatusOf(err))
	assert.Equal(t, "Admin access required", dittoapi.MessageOf(err))
	_, err = op.UpdateAdapter(ctx, "smb", dittoapi.UpdateAdapterRequest{})
	assert.Equal(t, http.StatusForbidden, dittoapi.StatusOf(err))

	_, err = admin.CreateUser(ctx, dittoapi.CreateUserRequest{Username: "adm2", Password: "adm2-password-1", Role: "admin"})
	require.NoError(t, err)
	adm2 := dittoapi.New(s.URL, nil)
	tok, err := adm2.Login(ctx, "adm2", "adm2-password-1")
	require.NoError(t, err)
	assert.True(t, tok.User.MustChangePassword)
	_, err = adm2.ListShares(ctx)
	assert.Equal(t, http.StatusForbidden, dittoapi.StatusOf(err), "%v", err)
	t.Logf("must-change-password answer: %v", err)
	_, err = adm2.ChangeOwnPassword(ctx, "adm2-password-1", "adm2-password-1")
	require.NoError(t, err, "the same password is accepted")
	_, err = adm2.ListShares(ctx)
	require.NoError(t, err)
	tok2, err := adm2.Refresh(ctx, tok.RefreshToken)
	if err == nil {
		assert.NotEmpty(t, tok2.AccessToken)
	} else {
		t.Logf("refresh with the pre-change token: %v", err)
	}

	// Adapters: disable SMB, change a port, read back.
	off := false
	a, err := admin.UpdateAdapter(ctx, "smb", dittoapi.UpdateAdapterRequest{Enabled: &off})
	require.NoError(t, err)
	assert.False(t, a.Enabled)
	assert.False(t, a.Running)
	set, err := admin.GetAdapterSettings(ctx, "smb")
	require.NoError(t, err)
	assert.Contains(t, set, "max_connections")
}
