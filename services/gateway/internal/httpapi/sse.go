package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/gateway/internal/grpcapi"
)

// sseHeartbeat keeps idle streams alive through proxies that cut silent connections (typically after 60 s).
const sseHeartbeat = 15 * time.Second

var eventMarshaler = protojson.MarshalOptions{UseProtoNames: true}

// streamEvents serves GET /v1/events:stream as Server-Sent Events by calling WatchCaseEvents on the gateway's own
// gRPC server, so the stream goes through the same authentication, rate limit and audit as every other read.
// Each event's id is its cursor; a browser's EventSource sends it back as Last-Event-ID when it reconnects, and the
// stream resumes right after it.
func (a *API) streamEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after := q.Get("after")
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		after = id
	}
	var types []string
	for _, v := range q["types"] {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				types = append(types, t)
			}
		}
	}
	md := metadata.MD{}
	for _, v := range r.Header.Values("Authorization") {
		md.Append("authorization", v)
	}
	md.Set("x-forwarded-for", a.addr.Of(r).String())
	ctx, cancel := context.WithCancel(metadata.NewOutgoingContext(r.Context(), md))
	defer cancel()

	snapshot, _ := strconv.ParseBool(q.Get("snapshot"))
	stream, err := a.query.WatchCaseEvents(ctx, &casekeeperv1.WatchCaseEventsRequest{After: after, Types: types, Snapshot: snapshot})
	if err != nil {
		writeError(w, err)
		return
	}
	// The server sends a header once the request is valid and authorised; without it, the stream ended with an
	// error, which is answered as JSON with its HTTP status rather than as an event stream.
	hdr, err := stream.Header()
	if err == nil && len(hdr.Get(grpcapi.StreamOpenedHeader)) == 0 {
		_, err = stream.Recv()
		if err == nil || errors.Is(err, io.EOF) {
			err = status.Error(codes.Internal, "stream ended before it started")
		}
	}
	if err != nil {
		writeError(w, err)
		return
	}

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	write := func(s string) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.WriteString(w, s); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write("retry: 2000\n\n") {
		return
	}

	type received struct {
		m   *casekeeperv1.WatchCaseEventsResponse
		err error
	}
	recv := make(chan received)
	go func() {
		for {
			m, err := stream.Recv()
			select {
			case recv <- received{m, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	heartbeat := time.NewTicker(sseHeartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-heartbeat.C:
			if !write(": keep-alive\n\n") {
				return
			}
		case got := <-recv:
			if got.err != nil {
				if st := status.Convert(got.err); st.Code() != codes.Canceled && !errors.Is(got.err, io.EOF) {
					body, _ := errorMarshaler.Marshal(st.Proto())
					write("event: error\ndata: " + string(body) + "\n\n")
				}
				return
			}
			msg, err := sseMessage(got.m)
			if err != nil || !write(msg) {
				return
			}
		}
	}
}

// sseMessage renders one message of the stream. An event's id is its cursor; so is a bookmark's, which is how a
// browser's EventSource keeps its Last-Event-ID current while the stream is idle. protojson output has no newlines
// unless it is asked to indent, so one data line suffices.
func sseMessage(m *casekeeperv1.WatchCaseEventsResponse) (string, error) {
	var id, kind string
	var data []byte
	var err error
	switch {
	case m.GetEvent() != nil:
		id, kind = m.GetEvent().GetCursor(), m.GetEvent().GetType()
		data, err = eventMarshaler.Marshal(m.GetEvent())
	case m.GetBookmark() != nil:
		id, kind = m.GetBookmark().GetCursor(), "bookmark"
		data, err = eventMarshaler.Marshal(m.GetBookmark())
	case m.GetSnapshot() != nil:
		kind = "snapshot" // no id: a snapshot case is no position to resume from
		data, err = eventMarshaler.Marshal(m.GetSnapshot())
	default:
		return ": empty message\n\n", nil
	}
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	b.WriteString("event: " + kind + "\ndata: " + string(data) + "\n\n")
	return b.String(), nil
}
