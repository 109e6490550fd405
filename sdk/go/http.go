package casekeeper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Decoding keeps working when the server adds fields: the protos only grow.
var (
	unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}
	marshal   = protojson.MarshalOptions{UseProtoNames: true}
)

// requestTimeout bounds an ordinary call; a long-poll adds its wait.
const requestTimeout = 30 * time.Second

// maxAnswerBytes bounds what is read of an answer (a page of 500 events with whole cases fits many times).
const maxAnswerBytes = 64 << 20

// call is one HTTP request to the gateway's JSON API.
type call struct {
	method string
	path   string
	query  url.Values
	body   proto.Message // nil for none
	extra  time.Duration // added to requestTimeout
}

// do sends c with a token and decodes a 2xx answer into out (nil: ignore the body). A 401 is tried once more with
// a new token, since the cached one may have been revoked or the clocks disagree. The answer's headers are returned.
func (c *Client) do(ctx context.Context, cl call, out proto.Message) (http.Header, error) {
	var payload []byte
	if cl.body != nil {
		var err error
		if payload, err = marshal.Marshal(cl.body); err != nil {
			return nil, fmt.Errorf("casekeeper: encoding the request: %w", err)
		}
	}
	u := c.api + cl.path
	if len(cl.query) > 0 {
		u += "?" + cl.query.Encode()
	}
	for attempt := 0; ; attempt++ {
		tok, err := c.tokens.get(ctx)
		if err != nil {
			return nil, err
		}
		hdr, body, err := c.send(ctx, cl, u, payload, tok.AccessToken)
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.Is(ErrUnauthenticated) && attempt == 0 && c.tokens.refused(tok) {
			continue
		}
		if err != nil {
			return hdr, err
		}
		if out != nil {
			if err := unmarshal.Unmarshal(body, out); err != nil {
				return hdr, fmt.Errorf("casekeeper: decoding the answer of %s %s: %w", cl.method, cl.path, err)
			}
		}
		return hdr, nil
	}
}

func (c *Client) send(ctx context.Context, cl call, u string, payload []byte, token string) (http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout+cl.extra)
	defer cancel()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, u, rd)
	if err != nil {
		return nil, nil, fmt.Errorf("casekeeper: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("casekeeper: %s %s: %w", cl.method, cl.path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return resp.Header, nil, fmt.Errorf("casekeeper: reading the answer of %s %s: %w", cl.method, cl.path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.Header, nil, httpError(resp, body)
	}
	return resp.Header, body, nil
}
