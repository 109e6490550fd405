package casekeeper

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// The webhook endpoints of the tenant, through the gateway's /v1/webhooks routes; the client needs webhooks:manage.

// ListEndpoints reads one page of the tenant's endpoints; pageToken is "" for the first.
func (c *Client) ListEndpoints(ctx context.Context, pageSize int, pageToken string) (*casekeeperv1.ListEndpointsResponse, error) {
	q := url.Values{}
	if pageSize != 0 {
		q.Set("page_size", strconv.Itoa(pageSize))
	}
	if pageToken != "" {
		q.Set("page_token", pageToken)
	}
	var resp casekeeperv1.ListEndpointsResponse
	if _, err := c.do(ctx, call{method: http.MethodGet, path: "/v1/webhooks/endpoints", query: q}, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// CreateEndpoint registers an endpoint; the answer holds its first signing secret (whsec_…).
func (c *Client) CreateEndpoint(ctx context.Context, ep *casekeeperv1.Endpoint) (*casekeeperv1.CreateEndpointResponse, error) {
	var resp casekeeperv1.CreateEndpointResponse
	if _, err := c.do(ctx, call{method: http.MethodPost, path: "/v1/webhooks/endpoints", body: ep}, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// DeleteEndpoint removes an endpoint.
func (c *Client) DeleteEndpoint(ctx context.Context, id string) error {
	_, err := c.do(ctx, call{method: http.MethodDelete, path: "/v1/webhooks/endpoints/" + url.PathEscape(id)}, nil)
	return err
}
