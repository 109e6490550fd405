package casekeeper

import (
	"context"
	"errors"
	"fmt"
	"io"

	"golang.org/x/oauth2"
	"google.golang.org/grpc/metadata"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// streamOpenedHeader is the gateway's header metadata of a stream it accepted.
const streamOpenedHeader = "x-casekeeper-stream"

// withToken puts a bearer token into a gRPC call's metadata.
func withToken(ctx context.Context, tok *oauth2.Token) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok.AccessToken)
}

// watchOnce opens CaseQueryService.WatchCaseEvents from the position reached and handles what arrives until the
// stream ends.
func (f *follower) watchOnce(ctx context.Context) (opened bool, tok *oauth2.Token, err error) {
	tok, err = f.c.tokens.get(ctx)
	if err != nil {
		return false, nil, err
	}
	cc, err := f.c.conn(f.c.grpcAddr)
	if err != nil {
		return false, tok, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := casekeeperv1.NewCaseQueryServiceClient(cc).WatchCaseEvents(withToken(ctx, tok),
		&casekeeperv1.WatchCaseEventsRequest{After: f.cursor, Types: f.o.Types})
	if err != nil {
		return false, tok, grpcError(err)
	}
	// The server sends its header once it accepted the request; a refusal comes as the first Recv's error.
	hdr, err := stream.Header()
	if err != nil {
		return false, tok, grpcError(err)
	}
	opened = len(hdr.Get(streamOpenedHeader)) > 0
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return opened, tok, errStreamEnded
		}
		if err != nil {
			return opened, tok, grpcError(err)
		}
		opened = true
		switch {
		case m.GetEvent() != nil:
			if err := f.handle(ctx, m.GetEvent()); err != nil {
				return true, tok, err
			}
		case m.GetBookmark() != nil:
			if err := f.advance(ctx, m.GetBookmark().GetCursor()); err != nil {
				return true, tok, err
			}
		case m.GetSnapshot() != nil:
			// Only sent when the request asks for a snapshot start, which Follow does not.
		default:
			return true, tok, fmt.Errorf("casekeeper: an empty stream message")
		}
	}
}
