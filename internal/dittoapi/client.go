// Package dittoapi is a small typed client of the DittoFS v0.29.0 REST API (/api/v1): login
// and refresh, users, adapters and their settings, metadata stores, local and remote block
// stores, shares. Failed calls return *Error, decoded from the server's RFC 7807 body and
// classified by IsAuth, IsNotFound, IsConflict and IsTransient.
package dittoapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultTimeout bounds one API call.
const DefaultTimeout = 10 * time.Second

// Client talks to one DittoFS server. It is safe for concurrent use once configured; the
// token is set by Login/Refresh (or SetToken).
type Client struct {
	base string
	http *http.Client

	token atomic.Pointer[string]
	calls atomic.Int64
}

// NewDefaultHTTPClient is an http.Client with a short dial timeout and DefaultTimeout overall.
// Pass your own (e.g. with a TLS config) to New for HTTPS.
func NewDefaultHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 5 * time.Second
	tr.ResponseHeaderTimeout = DefaultTimeout
	tr.MaxIdleConnsPerHost = 2
	return &http.Client{Transport: tr, Timeout: DefaultTimeout}
}

// New returns a client of the server at baseURL (e.g. "http://x-api.ns.svc.cluster.local:8080").
// hc may be nil (NewDefaultHTTPClient).
func New(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = NewDefaultHTTPClient()
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), http: hc}
}

// BaseURL is the server's base URL.
func (c *Client) BaseURL() string { return c.base }

// Calls is the number of HTTP requests this client sent.
func (c *Client) Calls() int64 { return c.calls.Load() }

// SetToken sets the bearer token sent with every call ("" for none).
func (c *Client) SetToken(t string) { c.token.Store(&t) }

// Token is the current bearer token.
func (c *Client) Token() string {
	if t := c.token.Load(); t != nil {
		return *t
	}
	return ""
}

// do sends one request. body is JSON-encoded; out (if not nil) receives the JSON answer.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return &Error{Method: method, Path: path, Err: err}
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if t := c.Token(); t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
	c.calls.Add(1)
	resp, err := c.http.Do(req)
	if err != nil {
		return &Error{Method: method, Path: path, Err: err}
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return &Error{Method: method, Path: path, Err: err}
	}
	if resp.StatusCode >= 300 {
		return &Error{Method: method, Path: path, Status: resp.StatusCode,
			Problem: decodeProblem(resp.StatusCode, resp.Header.Get("Content-Type"), data)}
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &Error{Method: method, Path: path, Status: resp.StatusCode,
			Problem: Problem{Status: resp.StatusCode, Title: "undecodable answer", Detail: err.Error()}}
	}
	return nil
}

// --- auth ---

// User is a control-plane user (sanitized).
type User struct {
	ID                 string   `json:"id,omitempty"`
	Username           string   `json:"username"`
	DisplayName        string   `json:"display_name,omitempty"`
	Role               string   `json:"role"`
	Groups             []string `json:"groups,omitempty"`
	Enabled            bool     `json:"enabled"`
	MustChangePassword bool     `json:"must_change_password"`
}

// Tokens is the answer of login and refresh.
type Tokens struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	TokenType    string    `json:"token_type"`
	ExpiresIn    int64     `json:"expires_in"`
	ExpiresAt    time.Time `json:"expires_at"`
	User         User      `json:"user"`
}

// Login authenticates and keeps the access token for later calls.
func (c *Client) Login(ctx context.Context, username, password string) (*Tokens, error) {
	t := &Tokens{}
	if err := c.do(ctx, http.MethodPost, "/api/v1/auth/login", map[string]string{"username": username, "password": password}, t); err != nil {
		return nil, err
	}
	c.SetToken(t.AccessToken)
	return t, nil
}

// Refresh exchanges a refresh token for a new pair and keeps the new access token.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (*Tokens, error) {
	t := &Tokens{}
	if err := c.do(ctx, http.MethodPost, "/api/v1/auth/refresh", map[string]string{"refresh_token": refreshToken}, t); err != nil {
		return nil, err
	}
	c.SetToken(t.AccessToken)
	return t, nil
}

// ChangeOwnPassword sets the logged-in user's password (clears must_change_password) and
// keeps the new access token the server returns.
func (c *Client) ChangeOwnPassword(ctx context.Context, current, next string) (*Tokens, error) {
	t := &Tokens{}
	body := map[string]string{"current_password": current, "new_password": next}
	if err := c.do(ctx, http.MethodPost, "/api/v1/users/me/password", body, t); err != nil {
		return nil, err
	}
	if t.AccessToken != "" {
		c.SetToken(t.AccessToken)
	}
	return t, nil
}

// --- users ---

// CreateUserRequest creates a user. Role is "user", "operator" or "admin".
type CreateUserRequest struct {
	Username    string `json:"username"`
	Password    string `json:"password"`
	DisplayName string `json:"display_name,omitempty"`
	Role        string `json:"role,omitempty"`
}

// GetUser reads a user.
func (c *Client) GetUser(ctx context.Context, name string) (*User, error) {
	u := &User{}
	return u, c.do(ctx, http.MethodGet, "/api/v1/users/"+url.PathEscape(name), nil, u)
}

// CreateUser creates a user (admin only).
func (c *Client) CreateUser(ctx context.Context, req CreateUserRequest) (*User, error) {
	u := &User{}
	return u, c.do(ctx, http.MethodPost, "/api/v1/users", req, u)
}

// ResetUserPassword sets another user's password (admin only; an admin's reset password must
// be changed at its next login).
func (c *Client) ResetUserPassword(ctx context.Context, name, password string) error {
	return c.do(ctx, http.MethodPost, "/api/v1/users/"+url.PathEscape(name)+"/password", map[string]string{"new_password": password}, nil)
}

// DeleteUser removes a user (admin only).
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/users/"+url.PathEscape(name), nil, nil)
}

// --- adapters ---

// HealthReport is the status DittoFS attaches to adapters and stores.
type HealthReport struct {
	Status    string    `json:"status"` // healthy, degraded, unhealthy, unknown
	Message   string    `json:"message,omitempty"`
	CheckedAt time.Time `json:"checked_at"`
}

// Adapter is a protocol adapter ("nfs", "smb").
type Adapter struct {
	ID      string         `json:"id,omitempty"`
	Type    string         `json:"type"`
	Enabled bool           `json:"enabled"`
	Running bool           `json:"running"`
	Port    int            `json:"port"`
	Config  map[string]any `json:"config,omitempty"`
	Status  HealthReport   `json:"status"`
}

// UpdateAdapterRequest changes an adapter; nil fields are kept.
type UpdateAdapterRequest struct {
	Enabled *bool          `json:"enabled,omitempty"`
	Port    *int           `json:"port,omitempty"`
	Config  map[string]any `json:"config,omitempty"`
}

// ListAdapters lists the adapters (admin or operator role).
func (c *Client) ListAdapters(ctx context.Context) ([]Adapter, error) {
	var out []Adapter
	return out, c.do(ctx, http.MethodGet, "/api/v1/adapters", nil, &out)
}

// GetAdapter reads one adapter (admin only).
func (c *Client) GetAdapter(ctx context.Context, typ string) (*Adapter, error) {
	a := &Adapter{}
	return a, c.do(ctx, http.MethodGet, "/api/v1/adapters/"+url.PathEscape(typ), nil, a)
}

// UpdateAdapter changes an adapter and restarts it (admin only).
func (c *Client) UpdateAdapter(ctx context.Context, typ string, req UpdateAdapterRequest) (*Adapter, error) {
	a := &Adapter{}
	return a, c.do(ctx, http.MethodPut, "/api/v1/adapters/"+url.PathEscape(typ), req, a)
}

// GetAdapterSettings reads an adapter's settings as a JSON object (admin only).
func (c *Client) GetAdapterSettings(ctx context.Context, typ string) (map[string]any, error) {
	out := map[string]any{}
	return out, c.do(ctx, http.MethodGet, "/api/v1/adapters/"+url.PathEscape(typ)+"/settings", nil, &out)
}

// PatchAdapterSettings changes the given settings only (admin only).
func (c *Client) PatchAdapterSettings(ctx context.Context, typ string, patch map[string]any) (map[string]any, error) {
	out := map[string]any{}
	return out, c.do(ctx, http.MethodPatch, "/api/v1/adapters/"+url.PathEscape(typ)+"/settings", patch, &out)
}

// --- stores ---

// Store is a metadata or block store. Config is the store's JSON configuration with secrets
// redacted by the server ("********").
type Store struct {
	ID     string          `json:"id,omitempty"`
	Name   string          `json:"name"`
	Kind   string          `json:"kind,omitempty"`
	Type   string          `json:"type"`
	Config json.RawMessage `json:"config,omitempty"`
	Status HealthReport    `json:"status"`
}

// ConfigMap decodes Config.
func (s *Store) ConfigMap() map[string]any {
	m := map[string]any{}
	_ = json.Unmarshal(s.Config, &m)
	return m
}

// BlockKind is "local" or "remote".
type BlockKind string

// Block store kinds.
const (
	BlockLocal  BlockKind = "local"
	BlockRemote BlockKind = "remote"
)

type storeBody struct {
	Name   string  `json:"name,omitempty"`
	Type   *string `json:"type,omitempty"`
	Config *string `json:"config,omitempty"`
}

func newStoreBody(name, typ string, config map[string]any) (storeBody, error) {
	b, err := json.Marshal(config)
	if err != nil {
		return storeBody{}, err
	}
	cfg := string(b)
	return storeBody{Name: name, Type: &typ, Config: &cfg}, nil
}

func (c *Client) getStore(ctx context.Context, path string) (*Store, error) {
	s := &Store{}
	return s, c.do(ctx, http.MethodGet, path, nil, s)
}

func (c *Client) writeStore(ctx context.Context, method, path, name, typ string, config map[string]any) (*Store, error) {
	body, err := newStoreBody(name, typ, config)
	if err != nil {
		return nil, err
	}
	s := &Store{}
	return s, c.do(ctx, method, path, body, s)
}

// GetMetadataStore reads a metadata store.
func (c *Client) GetMetadataStore(ctx context.Context, name string) (*Store, error) {
	return c.getStore(ctx, "/api/v1/store/metadata/"+url.PathEscape(name))
}

// CreateMetadataStore creates a metadata store (e.g. type "badger", config {"path": ...}).
func (c *Client) CreateMetadataStore(ctx context.Context, name, typ string, config map[string]any) (*Store, error) {
	return c.writeStore(ctx, http.MethodPost, "/api/v1/store/metadata", name, typ, config)
}

// GetBlockStore reads a local or remote block store.
func (c *Client) GetBlockStore(ctx context.Context, kind BlockKind, name string) (*Store, error) {
	return c.getStore(ctx, "/api/v1/store/block/"+string(kind)+"/"+url.PathEscape(name))
}

// CreateBlockStore creates a block store (local "fs" with {"path"}, remote "s3" with bucket,
// region, endpoint, access_key_id, secret_access_key, allow_private_endpoint).
func (c *Client) CreateBlockStore(ctx context.Context, kind BlockKind, name, typ string, config map[string]any) (*Store, error) {
	return c.writeStore(ctx, http.MethodPost, "/api/v1/store/block/"+string(kind), name, typ, config)
}

// UpdateBlockStore replaces a block store's type and configuration.
func (c *Client) UpdateBlockStore(ctx context.Context, kind BlockKind, name, typ string, config map[string]any) (*Store, error) {
	return c.writeStore(ctx, http.MethodPut, "/api/v1/store/block/"+string(kind)+"/"+url.PathEscape(name), "", typ, config)
}

// DeleteBlockStore removes a block store.
func (c *Client) DeleteBlockStore(ctx context.Context, kind BlockKind, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/store/block/"+string(kind)+"/"+url.PathEscape(name), nil, nil)
}

// --- shares ---

// Share is an exported share. Names carry a leading slash ("/export").
type Share struct {
	ID                 string  `json:"id,omitempty"`
	Name               string  `json:"name"`
	MetadataStoreID    string  `json:"metadata_store_id"`
	LocalBlockStoreID  string  `json:"local_block_store_id"`
	RemoteBlockStoreID *string `json:"remote_block_store_id"`
	ReadOnly           bool    `json:"read_only"`
	Enabled            bool    `json:"enabled"`
	DefaultPermission  string  `json:"default_permission"`
}

// CreateShareRequest creates a share; stores are named by name or id.
type CreateShareRequest struct {
	Name              string  `json:"name"`
	MetadataStoreID   string  `json:"metadata_store_id"`
	LocalBlockStore   string  `json:"local_block_store"`
	RemoteBlockStore  *string `json:"remote_block_store,omitempty"`
	ReadOnly          bool    `json:"read_only,omitempty"`
	DefaultPermission string  `json:"default_permission,omitempty"`
}

// UpdateShareRequest changes a share; nil fields are kept.
type UpdateShareRequest struct {
	RemoteBlockStoreID *string `json:"remote_block_store_id,omitempty"`
	ReadOnly           *bool   `json:"read_only,omitempty"`
	DefaultPermission  *string `json:"default_permission,omitempty"`
}

func sharePath(name string) string {
	return "/api/v1/shares/" + url.PathEscape(strings.TrimLeft(name, "/"))
}

// ListShares lists the shares.
func (c *Client) ListShares(ctx context.Context) ([]Share, error) {
	var out []Share
	return out, c.do(ctx, http.MethodGet, "/api/v1/shares", nil, &out)
}

// GetShare reads a share.
func (c *Client) GetShare(ctx context.Context, name string) (*Share, error) {
	s := &Share{}
	return s, c.do(ctx, http.MethodGet, sharePath(name), nil, s)
}

// CreateShare creates a share.
func (c *Client) CreateShare(ctx context.Context, req CreateShareRequest) (*Share, error) {
	s := &Share{}
	return s, c.do(ctx, http.MethodPost, "/api/v1/shares", req, s)
}

// UpdateShare changes a share.
func (c *Client) UpdateShare(ctx context.Context, name string, req UpdateShareRequest) (*Share, error) {
	s := &Share{}
	return s, c.do(ctx, http.MethodPut, sharePath(name), req, s)
}

// DeleteShare removes a share.
func (c *Client) DeleteShare(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, sharePath(name), nil, nil)
}

// SnapshotPolicy is a share's snapshot policy as the server returns it (Interval and TTL are
// Go durations as the server formats them, e.g. "24h0m0s"; TTL is empty for no age bound).
type SnapshotPolicy struct {
	Share      string `json:"share"`
	Enabled    bool   `json:"enabled"`
	Interval   string `json:"interval"`
	KeepLast   int    `json:"keep_last"`
	TTL        string `json:"ttl,omitempty"`
	NamePrefix string `json:"name_prefix,omitempty"`
}

// PutSnapshotPolicyRequest creates or replaces a share's snapshot policy.
type PutSnapshotPolicyRequest struct {
	Interval string `json:"interval"`
	KeepLast int    `json:"keep_last"`
	TTL      string `json:"ttl,omitempty"`
	Enabled  *bool  `json:"enabled,omitempty"`
}

// ListSnapshotPolicies lists the snapshot policies of every share.
func (c *Client) ListSnapshotPolicies(ctx context.Context) ([]SnapshotPolicy, error) {
	var out []SnapshotPolicy
	return out, c.do(ctx, http.MethodGet, "/api/v1/snapshot-policies", nil, &out)
}

// PutSnapshotPolicy creates or replaces the snapshot policy of a share.
func (c *Client) PutSnapshotPolicy(ctx context.Context, share string, req PutSnapshotPolicyRequest) (*SnapshotPolicy, error) {
	p := &SnapshotPolicy{}
	return p, c.do(ctx, http.MethodPut, sharePath(share)+"/snapshot-policy", req, p)
}

// DeleteSnapshotPolicy removes the snapshot policy of a share.
func (c *Client) DeleteSnapshotPolicy(ctx context.Context, share string) error {
	return c.do(ctx, http.MethodDelete, sharePath(share)+"/snapshot-policy", nil, nil)
}
