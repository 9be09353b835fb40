package dittoapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClassification(t *testing.T) {
	cases := []struct {
		status      int
		contentType string
		body        string
		kind        Kind
		message     string
	}{
		{401, "application/problem+json", `{"type":"about:blank","title":"Unauthorized","status":401,"detail":"Invalid username or password"}`, KindAuth, "Invalid username or password"},
		{403, "text/plain; charset=utf-8", "Admin access required\n", KindAuth, "Admin access required"},
		{404, "application/problem+json", `{"type":"about:blank","title":"Not Found","status":404,"detail":"Share not found"}`, KindNotFound, "Share not found"},
		{409, "application/problem+json", `{"title":"Conflict","status":409,"detail":"Block store already exists"}`, KindConflict, "Block store already exists"},
		{400, "application/problem+json", `{"title":"Bad Request","status":400}`, KindOther, "Bad Request"},
		{500, "application/problem+json", `{"title":"Internal Server Error","status":500,"detail":"Failed to create block store"}`, KindTransient, "Failed to create block store"},
		{503, "text/html", "<html>down</html>", KindTransient, "<html>down</html>"},
		{429, "", "", KindTransient, "Too Many Requests"},
	}
	for _, c := range cases {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if c.contentType != "" {
				w.Header().Set("Content-Type", c.contentType)
			}
			w.WriteHeader(c.status)
			_, _ = w.Write([]byte(c.body))
		}))
		_, err := New(srv.URL, nil).GetShare(context.Background(), "/x")
		srv.Close()
		require.Error(t, err)
		assert.Equal(t, c.kind, KindOf(err), "status %d", c.status)
		assert.Equal(t, c.status, StatusOf(err))
		assert.Equal(t, c.message, MessageOf(err), "status %d", c.status)
		assert.Equal(t, c.kind == KindAuth, IsAuth(err))
		assert.Equal(t, c.kind == KindNotFound, IsNotFound(err))
		assert.Equal(t, c.kind == KindConflict, IsConflict(err))
		assert.Equal(t, c.kind == KindTransient, IsTransient(err))
		assert.False(t, IsUnreachable(err))
		assert.Contains(t, err.Error(), "GET /api/v1/shares/x")
	}
	assert.False(t, IsNotFound(nil))
	assert.False(t, IsTransient(nil))
}

func TestTransportErrorsAreTransient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	url := srv.URL
	srv.Close()
	_, err := New(url, nil).ListAdapters(context.Background())
	require.Error(t, err)
	assert.True(t, IsTransient(err))
	assert.True(t, IsUnreachable(err))
	assert.Equal(t, 0, StatusOf(err))
}

func TestTimeout(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	c := New(srv.URL, &http.Client{Timeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := c.ListShares(context.Background())
	require.Error(t, err)
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.True(t, IsTransient(err))
	var e *Error
	require.True(t, errors.As(err, &e))
}

func TestTokenAndBodies(t *testing.T) {
	var gotAuth, gotPath, gotCT string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotPath, gotCT = r.Header.Get("Authorization"), r.URL.EscapedPath(), r.Header.Get("Content-Type")
		if r.URL.Path == "/api/v1/auth/login" {
			_, _ = w.Write([]byte(`{"access_token":"tok","refresh_token":"ref","expires_in":900}`))
			return
		}
		_, _ = w.Write([]byte(`{"name":"/export","metadata_store_id":"m"}`))
	}))
	defer srv.Close()
	c := New(srv.URL+"/", nil)
	tok, err := c.Login(context.Background(), "u", "p")
	require.NoError(t, err)
	assert.Equal(t, "ref", tok.RefreshToken)
	assert.Equal(t, "application/json", gotCT)
	sh, err := c.GetShare(context.Background(), "/export")
	require.NoError(t, err)
	assert.Equal(t, "Bearer tok", gotAuth)
	assert.Equal(t, "/api/v1/shares/export", gotPath)
	assert.Equal(t, "m", sh.MetadataStoreID)
	assert.EqualValues(t, 2, c.Calls())
}
