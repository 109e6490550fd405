package casekeeper

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// GetCase reads one case of the caller's tenant (GET /v1/cases/{id}); a case of another tenant or none at all is
// ErrNotFound.
func (c *Client) GetCase(ctx context.Context, id string) (*casekeeperv1.Case, error) {
	var resp casekeeperv1.GetCaseResponse
	if _, err := c.do(ctx, call{method: http.MethodGet, path: "/v1/cases/" + url.PathEscape(id)}, &resp); err != nil {
		return nil, err
	}
	return resp.GetCase(), nil
}

// ListCases reads one page of the tenant's cases (GET /v1/cases); pass the answer's next_page_token as
// req.PageToken for the next page. This is the first step of a resync after ErrResyncRequired.
func (c *Client) ListCases(ctx context.Context, req *casekeeperv1.ListCasesRequest) (*casekeeperv1.ListCasesResponse, error) {
	q := url.Values{}
	for _, s := range req.GetStatuses() {
		q.Add("statuses", s.String())
	}
	if req.GetExternalRef() != "" {
		q.Set("external_ref", req.GetExternalRef())
	}
	if req.GetUpdatedAfter() != nil {
		q.Set("updated_after", req.GetUpdatedAfter().AsTime().UTC().Format(time.RFC3339Nano))
	}
	if req.GetApplicantName() != "" {
		q.Set("applicant_name", req.GetApplicantName())
	}
	if req.GetNewestFirst() {
		q.Set("newest_first", "true")
	}
	if req.GetPageSize() != 0 {
		q.Set("page_size", strconv.Itoa(int(req.GetPageSize())))
	}
	if req.GetPageToken() != "" {
		q.Set("page_token", req.GetPageToken())
	}
	var resp casekeeperv1.ListCasesResponse
	if _, err := c.do(ctx, call{method: http.MethodGet, path: "/v1/cases", query: q}, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// CreateCase writes a new case through the case service's gRPC API (WithCaseService), as a KYC provider does: the
// client needs cases:write. It is idempotent by req.RequestId: a retry returns the case the first call created.
func (c *Client) CreateCase(ctx context.Context, req *casekeeperv1.CreateCaseRequest) (*casekeeperv1.Case, error) {
	var out *casekeeperv1.Case
	err := c.unary(ctx, c.caseAddr, func(ctx context.Context, cc casekeeperv1.CaseServiceClient) error {
		resp, err := cc.CreateCase(ctx, req)
		out = resp.GetCase()
		return err
	})
	return out, err
}

// unary makes one gRPC call to the case service with a token, once more with a new token if the first is refused.
func (c *Client) unary(ctx context.Context, addr string, f func(context.Context, casekeeperv1.CaseServiceClient) error) error {
	cc, err := c.conn(addr)
	if err != nil {
		return err
	}
	client := casekeeperv1.NewCaseServiceClient(cc)
	for attempt := 0; ; attempt++ {
		tok, err := c.tokens.get(ctx)
		if err != nil {
			return err
		}
		callCtx, cancel := context.WithTimeout(ctx, requestTimeout)
		err = grpcError(f(withToken(callCtx, tok), client))
		cancel()
		if ae, ok := err.(*APIError); ok && ae.Is(ErrUnauthenticated) && attempt == 0 && c.tokens.refused(tok) {
			continue
		}
		return err
	}
}
