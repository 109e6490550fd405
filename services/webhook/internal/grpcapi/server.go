// Package grpcapi serves casekeeper.v1.WebhookService: it checks the shape of each request, calls the use cases
// with the caller's tenant, and is the one place where domain errors become gRPC status codes.
package grpcapi

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/grpcserver"
	"github.com/casekeeper/core/pkg/validation"
	"github.com/casekeeper/core/pkg/webhooks"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/proto/webhookbody"
	"github.com/casekeeper/core/services/webhook/internal/app"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
	"github.com/casekeeper/core/services/webhook/internal/mongostore"
)

// Policy: every method of the service needs webhooks:manage.
func Policy() auth.Policy {
	roles := map[string]string{}
	for _, m := range casekeeperv1.WebhookService_ServiceDesc.Methods {
		roles["/"+casekeeperv1.WebhookService_ServiceDesc.ServiceName+"/"+m.MethodName] = auth.RoleWebhooksManage
	}
	return auth.Policy{Roles: roles, Public: auth.IsInfrastructure}
}

// Server implements WebhookService.
type Server struct {
	casekeeperv1.UnimplementedWebhookServiceServer
	Endpoints  *app.Endpoints
	Deliveries *app.Deliveries
	Notices    *app.NoticeSettings
	Store      *mongostore.Store
	// Waiting lists an endpoint's deliveries still waiting for their first attempt (natsqueue.Queue.Waiting).
	Waiting func(ctx context.Context, tenant, endpointID string, limit int) ([]delivery.Delivery, error)
}

const (
	defaultPageSize = 50
	maxPageSize     = 500
)

var (
	endpointID = regexp.MustCompile(`^ep_[a-z2-7]{24}$`)
	deliveryID = regexp.MustCompile(`^msg_[a-z2-7]{26}$`)
)

func tenant(ctx context.Context) (string, error) {
	p, err := auth.TenantOf(ctx)
	if err != nil {
		return "", auth.ToStatus(err)
	}
	return p.Tenant, nil
}

// toStatus maps errors of the use cases; anything else is left for grpcserver to mask as Internal.
func toStatus(err error) error {
	if errs, ok := validation.As(err); ok {
		return grpcserver.InvalidArgument(errs)
	}
	switch {
	case errors.Is(err, delivery.ErrNotFound):
		return status.Error(codes.NotFound, "not found")
	case errors.Is(err, delivery.ErrConflict):
		return status.Error(codes.AlreadyExists, "already exists")
	case errors.Is(err, delivery.ErrEventGone):
		return status.Error(codes.FailedPrecondition, "the delivery's event is no longer stored (past the event stream's retention, or erased with its redacted case), and its record is too old to send the thin form")
	case errors.Is(err, app.ErrTestDelivery):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, app.ErrUnavailable):
		return status.Error(codes.Unavailable, "the endpoint registry is unavailable; retry")
	}
	return err
}

func invalid(field, format string, args ...any) error {
	var errs validation.Errors
	errs.Add(field, format, args...)
	return grpcserver.InvalidArgument(errs)
}

func checkEndpointID(field, id string) error {
	if id == "" {
		return invalid(field, "is required")
	}
	if !endpointID.MatchString(id) {
		return invalid(field, "is not an endpoint id (ep_…)")
	}
	return nil
}

func pageSize(n int32) (int, error) {
	switch {
	case n < 0 || n > maxPageSize:
		return 0, invalid("page_size", "must be between 0 (default %d) and %d", defaultPageSize, maxPageSize)
	case n == 0:
		return defaultPageSize, nil
	}
	return int(n), nil
}

func (s *Server) CreateEndpoint(ctx context.Context, req *casekeeperv1.CreateEndpointRequest) (*casekeeperv1.CreateEndpointResponse, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetEndpoint() == nil {
		return nil, invalid("endpoint", "is required")
	}
	if req.GetEndpoint().GetId() != "" {
		return nil, invalid("endpoint.id", "is assigned by the service; leave it empty")
	}
	if err := checkEnums(req.GetEndpoint()); err != nil {
		return nil, err
	}
	e, secret, err := s.Endpoints.Create(ctx, t, endpointFromProto(req.GetEndpoint()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &casekeeperv1.CreateEndpointResponse{Endpoint: endpointToProto(e), Secret: shownSecret(secret)}, nil
}

func (s *Server) GetEndpoint(ctx context.Context, req *casekeeperv1.GetEndpointRequest) (*casekeeperv1.GetEndpointResponse, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkEndpointID("id", req.GetId()); err != nil {
		return nil, err
	}
	e, err := s.Endpoints.Get(ctx, t, req.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &casekeeperv1.GetEndpointResponse{Endpoint: endpointToProto(e)}, nil
}

// GetEndpointHealth reads 24 hourly and 7 daily buckets of the endpoint's attempts: 31 reads by key.
func (s *Server) GetEndpointHealth(ctx context.Context, req *casekeeperv1.GetEndpointHealthRequest) (*casekeeperv1.GetEndpointHealthResponse, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkEndpointID("id", req.GetId()); err != nil {
		return nil, err
	}
	// Only the tenant's own endpoint: another tenant's id is not found, whatever its buckets hold.
	if _, err := s.Endpoints.Get(ctx, t, req.GetId()); err != nil {
		return nil, toStatus(err)
	}
	now := time.Now()
	hours, err := s.Store.EndpointHealth(ctx, t, req.GetId(), delivery.Hourly, 24, now)
	if err != nil {
		return nil, err
	}
	days, err := s.Store.EndpointHealth(ctx, t, req.GetId(), delivery.Daily, 7, now)
	if err != nil {
		return nil, err
	}
	return &casekeeperv1.GetEndpointHealthResponse{Hours: healthToProto(hours), Days: healthToProto(days),
		HoursTotal: bucketToProto(delivery.Merge(hours)), DaysTotal: bucketToProto(delivery.Merge(days))}, nil
}

func (s *Server) GetNoticeSettings(ctx context.Context, _ *casekeeperv1.GetNoticeSettingsRequest) (*casekeeperv1.GetNoticeSettingsResponse, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	n, err := s.Notices.Get(ctx, t)
	if err != nil {
		return nil, toStatus(err)
	}
	return &casekeeperv1.GetNoticeSettingsResponse{Settings: noticeSettingsToProto(n)}, nil
}

func (s *Server) UpdateNoticeSettings(ctx context.Context, req *casekeeperv1.UpdateNoticeSettingsRequest) (*casekeeperv1.UpdateNoticeSettingsResponse, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	n, err := s.Notices.Set(ctx, t, strings.TrimSpace(req.GetUrl()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &casekeeperv1.UpdateNoticeSettingsResponse{Settings: noticeSettingsToProto(n)}, nil
}

func (s *Server) ListNotices(ctx context.Context, req *casekeeperv1.ListNoticesRequest) (*casekeeperv1.ListNoticesResponse, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	ops, err := s.Notices.List(ctx, t, size)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &casekeeperv1.ListNoticesResponse{}
	for _, op := range ops {
		resp.Notices = append(resp.Notices, &casekeeperv1.Notice{Id: op.ID, Type: op.Kind, EndpointId: op.EndpointID,
			EndpointUrl: op.EndpointURL, Reason: op.Reason, At: timestamppb.New(op.At)})
	}
	return resp, nil
}

func noticeSettingsToProto(n delivery.NoticeSettings) *casekeeperv1.NoticeSettings {
	p := &casekeeperv1.NoticeSettings{Url: n.URL, Secret: n.Secret}
	if !n.UpdatedAt.IsZero() {
		p.UpdatedAt = timestamppb.New(n.UpdatedAt)
	}
	return p
}

func healthToProto(bs []delivery.HealthBucket) []*casekeeperv1.HealthBucket {
	out := make([]*casekeeperv1.HealthBucket, len(bs))
	for i, b := range bs {
		out[i] = bucketToProto(b)
	}
	return out
}

func bucketToProto(b delivery.HealthBucket) *casekeeperv1.HealthBucket {
	out := &casekeeperv1.HealthBucket{Start: timestamppb.New(b.Start), Attempts: b.Attempts, Succeeded: b.Succeeded}
	if b.Attempts > 0 {
		out.LatencyP50, out.LatencyP99 = durationpb.New(b.Percentile(0.5)), durationpb.New(b.Percentile(0.99))
	}
	return out
}

func (s *Server) ListEndpoints(ctx context.Context, req *casekeeperv1.ListEndpointsRequest) (*casekeeperv1.ListEndpointsResponse, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	if tok := req.GetPageToken(); tok != "" && !endpointID.MatchString(tok) {
		return nil, invalid("page_token", "is not a token returned by ListEndpoints")
	}
	eps, next, err := s.Endpoints.List(ctx, t, req.GetPageToken(), size)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &casekeeperv1.ListEndpointsResponse{NextPageToken: next}
	for _, e := range eps {
		resp.Endpoints = append(resp.Endpoints, endpointToProto(e))
	}
	return resp, nil
}

func (s *Server) UpdateEndpoint(ctx context.Context, req *casekeeperv1.UpdateEndpointRequest) (*casekeeperv1.UpdateEndpointResponse, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetEndpoint() == nil {
		return nil, invalid("endpoint", "is required")
	}
	if err := checkEndpointID("endpoint.id", req.GetEndpoint().GetId()); err != nil {
		return nil, err
	}
	if err := checkEnums(req.GetEndpoint()); err != nil {
		return nil, err
	}
	e, err := s.Endpoints.Update(ctx, t, endpointFromProto(req.GetEndpoint()), req.GetUpdateMask().GetPaths())
	if err != nil {
		return nil, toStatus(err)
	}
	return &casekeeperv1.UpdateEndpointResponse{Endpoint: endpointToProto(e)}, nil
}

func (s *Server) DeleteEndpoint(ctx context.Context, req *casekeeperv1.DeleteEndpointRequest) (*casekeeperv1.DeleteEndpointResponse, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkEndpointID("id", req.GetId()); err != nil {
		return nil, err
	}
	if err := s.Endpoints.Delete(ctx, t, req.GetId()); err != nil {
		return nil, toStatus(err)
	}
	return &casekeeperv1.DeleteEndpointResponse{}, nil
}

func (s *Server) RevealSecret(ctx context.Context, req *casekeeperv1.RevealSecretRequest) (*casekeeperv1.RevealSecretResponse, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkEndpointID("id", req.GetId()); err != nil {
		return nil, err
	}
	secrets, err := s.Endpoints.Secrets(ctx, t, req.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &casekeeperv1.RevealSecretResponse{}
	for _, sec := range secrets {
		resp.Secrets = append(resp.Secrets, secretToProto(sec))
	}
	return resp, nil
}

func (s *Server) RotateSecret(ctx context.Context, req *casekeeperv1.RotateSecretRequest) (*casekeeperv1.RotateSecretResponse, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkEndpointID("id", req.GetId()); err != nil {
		return nil, err
	}
	var ed25519 *bool
	switch req.GetSignatureScheme() {
	case casekeeperv1.SignatureScheme_SIGNATURE_SCHEME_UNSPECIFIED:
	case casekeeperv1.SignatureScheme_SIGNATURE_SCHEME_HMAC_SHA256, casekeeperv1.SignatureScheme_SIGNATURE_SCHEME_ED25519:
		v := req.GetSignatureScheme() == casekeeperv1.SignatureScheme_SIGNATURE_SCHEME_ED25519
		ed25519 = &v
	default:
		return nil, invalid("signature_scheme", "%d is not a signature scheme", req.GetSignatureScheme())
	}
	sec, err := s.Endpoints.Rotate(ctx, t, req.GetId(), ed25519)
	if err != nil {
		return nil, toStatus(err)
	}
	return &casekeeperv1.RotateSecretResponse{Secret: secretToProto(sec)}, nil
}

func (s *Server) SendTestEvent(ctx context.Context, req *casekeeperv1.SendTestEventRequest) (*casekeeperv1.SendTestEventResponse, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkEndpointID("id", req.GetId()); err != nil {
		return nil, err
	}
	a, err := s.Endpoints.SendTest(ctx, t, req.GetId(), req.GetEventType())
	if err != nil {
		return nil, toStatus(err)
	}
	return &casekeeperv1.SendTestEventResponse{Attempt: attemptToProto(a)}, nil
}

func (s *Server) PreviewTransform(ctx context.Context, req *casekeeperv1.PreviewTransformRequest) (*casekeeperv1.PreviewTransformResponse, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	in, out, err := s.Endpoints.Preview(ctx, t, req.GetJqTransform())
	if err != nil {
		return nil, toStatus(err)
	}
	return &casekeeperv1.PreviewTransformResponse{Input: in, Output: out}, nil
}

func (s *Server) ListDeliveries(ctx context.Context, req *casekeeperv1.ListDeliveriesRequest) (*casekeeperv1.ListDeliveriesResponse, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	var errs validation.Errors
	f := delivery.DeliveryFilter{EndpointID: req.GetEndpointId(), EventID: req.GetEventId()}
	if f.EndpointID != "" && !endpointID.MatchString(f.EndpointID) {
		errs.Add("endpoint_id", "is not an endpoint id (ep_…)")
	}
	if len(f.EventID) > 200 {
		errs.Add("event_id", "must be at most 200 bytes")
	} else {
		errs.Text("event_id", f.EventID, validation.TextRule{})
	}
	switch st := req.GetStatus(); st {
	case casekeeperv1.DeliveryStatus_DELIVERY_STATUS_UNSPECIFIED:
	case casekeeperv1.DeliveryStatus_DELIVERY_STATUS_PENDING, casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED,
		casekeeperv1.DeliveryStatus_DELIVERY_STATUS_RETRYING, casekeeperv1.DeliveryStatus_DELIVERY_STATUS_DEAD:
		f.Status = statusFromProto(st)
	default:
		errs.Add("status", "is not a delivery status")
	}
	if req.Since != nil {
		if err := req.GetSince().CheckValid(); err != nil {
			errs.Add("since", "is not a valid timestamp")
		}
		f.Since = req.GetSince().AsTime()
	}
	if req.Until != nil {
		if err := req.GetUntil().CheckValid(); err != nil {
			errs.Add("until", "is not a valid timestamp")
		}
		f.Until = req.GetUntil().AsTime()
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		errs.Add("until", "must be after since")
	}
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var cursor *mongostore.Cursor
	if tok := req.GetPageToken(); tok != "" {
		if cursor, err = decodeCursor(tok); err != nil {
			errs.Add("page_token", "is not a token returned by ListDeliveries")
		}
	}
	if len(errs) > 0 {
		return nil, grpcserver.InvalidArgument(errs)
	}
	ds, err := s.Store.ListDeliveries(ctx, t, f, cursor, size+1)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &casekeeperv1.ListDeliveriesResponse{}
	if len(ds) > size {
		ds = ds[:size]
		last := ds[size-1]
		resp.NextPageToken = encodeCursor(mongostore.Cursor{CreatedAt: last.CreatedAt, ID: last.ID})
	}
	waiting, err := s.waiting(ctx, t, f, cursor, size, ds)
	if err != nil {
		return nil, toStatus(err)
	}
	for _, d := range append(waiting, ds...) {
		resp.Deliveries = append(resp.Deliveries, deliveryToProto(d))
	}
	return resp, nil
}

// waiting is what the first page of one endpoint's log shows above its records: the deliveries still waiting for
// their first attempt (up to the page size, newest first), which have no record until that attempt is made. They
// do not count towards the page, and an attempt that is on record by now is not shown twice.
func (s *Server) waiting(ctx context.Context, tenant string, f delivery.DeliveryFilter, cursor *mongostore.Cursor, size int, recorded []delivery.Delivery) ([]delivery.Delivery, error) {
	if s.Waiting == nil || cursor != nil || f.EndpointID == "" || f.EventID != "" || !f.Until.IsZero() ||
		(f.Status != 0 && f.Status != delivery.StatusPending) {
		return nil, nil
	}
	ws, err := s.Waiting(ctx, tenant, f.EndpointID, size)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(recorded))
	for _, d := range recorded {
		seen[d.ID] = true
	}
	out := make([]delivery.Delivery, 0, len(ws))
	for i := len(ws) - 1; i >= 0; i-- { // the queue's order is oldest first
		if d := ws[i]; !seen[d.ID] && !d.CreatedAt.Before(f.Since) {
			out = append(out, d)
		}
	}
	return out, nil
}

func (s *Server) GetDelivery(ctx context.Context, req *casekeeperv1.GetDeliveryRequest) (*casekeeperv1.GetDeliveryResponse, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkDeliveryID(req.GetId()); err != nil {
		return nil, err
	}
	d, err := s.Store.GetDelivery(ctx, t, req.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &casekeeperv1.GetDeliveryResponse{Delivery: deliveryToProto(d)}, nil
}

func (s *Server) ResendDelivery(ctx context.Context, req *casekeeperv1.ResendDeliveryRequest) (*casekeeperv1.ResendDeliveryResponse, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkDeliveryID(req.GetId()); err != nil {
		return nil, err
	}
	d, err := s.Deliveries.Resend(ctx, t, req.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &casekeeperv1.ResendDeliveryResponse{Delivery: deliveryToProto(d)}, nil
}

func (s *Server) RecoverFailed(ctx context.Context, req *casekeeperv1.RecoverFailedRequest) (*casekeeperv1.RecoverFailedResponse, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkEndpointID("endpoint_id", req.GetEndpointId()); err != nil {
		return nil, err
	}
	if req.Since == nil {
		return nil, invalid("since", "is required")
	}
	if err := req.GetSince().CheckValid(); err != nil {
		return nil, invalid("since", "is not a valid timestamp")
	}
	if req.GetSince().AsTime().After(time.Now()) {
		return nil, invalid("since", "is in the future")
	}
	n, err := s.Deliveries.Recover(ctx, t, req.GetEndpointId(), req.GetSince().AsTime())
	if err != nil {
		return nil, toStatus(err)
	}
	return &casekeeperv1.RecoverFailedResponse{Recovered: int32(n)}, nil
}

func checkDeliveryID(id string) error {
	if id == "" {
		return invalid("id", "is required")
	}
	if !deliveryID.MatchString(id) {
		return invalid("id", "is not a delivery id (msg_…)")
	}
	return nil
}

func encodeCursor(c mongostore.Cursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.CreatedAt.UnixNano(), 10) + "|" + c.ID))
}

func decodeCursor(tok string) (*mongostore.Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return nil, err
	}
	ns, id, ok := strings.Cut(string(raw), "|")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || !deliveryID.MatchString(id) {
		return nil, errors.New("bad cursor")
	}
	return &mongostore.Cursor{CreatedAt: time.Unix(0, n).UTC(), ID: id}, nil
}

// --- conversions ---

// checkOrdering refuses an ordering or a signature scheme that is none of its enum's values.
func checkEnums(p *casekeeperv1.Endpoint) error {
	if _, ok := casekeeperv1.EndpointOrdering_name[int32(p.GetOrdering())]; !ok {
		return invalid("endpoint.ordering", "%d is not an ordering (ENDPOINT_ORDERING_NONE or ENDPOINT_ORDERING_PER_CASE)", p.GetOrdering())
	}
	if _, ok := casekeeperv1.SignatureScheme_name[int32(p.GetSignatureScheme())]; !ok {
		return invalid("endpoint.signature_scheme", "%d is not a signature scheme (SIGNATURE_SCHEME_HMAC_SHA256 or SIGNATURE_SCHEME_ED25519)", p.GetSignatureScheme())
	}
	return nil
}

func endpointFromProto(p *casekeeperv1.Endpoint) delivery.Endpoint {
	e := delivery.Endpoint{
		ID: p.GetId(), URL: p.GetUrl(), Description: p.GetDescription(), EventTypes: p.GetEventTypes(),
		Disabled: p.GetDisabled(), DisabledReason: p.GetDisabledReason(), Headers: p.GetHeaders(), JQ: p.GetJqTransform(),
		RateLimit: int(p.GetRateLimitPerSecond()), MaxConcurrency: int(p.GetMaxConcurrency()),
		PayloadVersion: p.GetPayloadVersion(),
		PerCase:        p.GetOrdering() == casekeeperv1.EndpointOrdering_ENDPOINT_ORDERING_PER_CASE,
		Ed25519:        p.GetSignatureScheme() == casekeeperv1.SignatureScheme_SIGNATURE_SCHEME_ED25519,
	}
	switch p.GetPayloadFormat() {
	case casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_UNSPECIFIED:
	case casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_FULL:
		e.Format = delivery.FormatFull
	case casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_THIN:
		e.Format = delivery.FormatThin
	case casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_JQ:
		e.Format = delivery.FormatJQ
	default:
		e.Format = -1 // refused by validation, naming payload_format
	}
	return e
}

// endpointToProto shows every custom header value as app.HeaderValueMask: they are write-only.
func endpointToProto(e delivery.Endpoint) *casekeeperv1.Endpoint {
	var headers map[string]string
	if len(e.Headers) > 0 {
		headers = make(map[string]string, len(e.Headers))
		for k := range e.Headers {
			headers[k] = app.HeaderValueMask
		}
	}
	p := &casekeeperv1.Endpoint{
		Id: e.ID, Url: e.URL, Description: e.Description, EventTypes: e.EventTypes, Disabled: e.Disabled,
		DisabledReason: e.DisabledReason, Headers: headers, JqTransform: e.JQ,
		RateLimitPerSecond: int32(e.RateLimit), MaxConcurrency: int32(e.MaxConcurrency),
		CreatedAt: timestamppb.New(e.CreatedAt), UpdatedAt: timestamppb.New(e.UpdatedAt),
		PayloadVersion: cmp.Or(e.PayloadVersion, webhookbody.Versions[0]),
		Ordering:       casekeeperv1.EndpointOrdering_ENDPOINT_ORDERING_NONE,
	}
	if e.PerCase {
		p.Ordering = casekeeperv1.EndpointOrdering_ENDPOINT_ORDERING_PER_CASE
	}
	p.SignatureScheme = casekeeperv1.SignatureScheme_SIGNATURE_SCHEME_HMAC_SHA256
	if e.SignsEd25519() {
		p.SignatureScheme = casekeeperv1.SignatureScheme_SIGNATURE_SCHEME_ED25519
	}
	if !e.FailingSince.IsZero() {
		p.FailingSince = timestamppb.New(e.FailingSince)
	}
	switch e.Format {
	case delivery.FormatFull:
		p.PayloadFormat = casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_FULL
	case delivery.FormatThin:
		p.PayloadFormat = casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_THIN
	case delivery.FormatJQ:
		p.PayloadFormat = casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_JQ
	}
	return p
}

// shownSecret is what the API shows of a secret: a whsec_ secret as it is, an Ed25519 signing key as its whpk_
// public key — the private key never leaves the service.
func shownSecret(secret string) string {
	if webhooks.IsSigningKey(secret) {
		pub, err := webhooks.PublicKeyOf(secret)
		if err != nil {
			return "" // a stored key that does not decode: nothing to show (signing with it fails, visibly)
		}
		return pub
	}
	return secret
}

func secretToProto(s delivery.Secret) *casekeeperv1.SigningSecret {
	p := &casekeeperv1.SigningSecret{Secret: shownSecret(s.Value), CreatedAt: timestamppb.New(s.CreatedAt)}
	if !s.ExpiresAt.IsZero() {
		p.ExpiresAt = timestamppb.New(s.ExpiresAt)
	}
	return p
}

func attemptToProto(a delivery.Attempt) *casekeeperv1.Attempt {
	p := &casekeeperv1.Attempt{Number: int32(a.Number), At: timestamppb.New(a.At), StatusCode: int32(a.StatusCode),
		Latency: durationpb.New(a.Latency), ResponseExcerpt: a.Response, Error: a.Error, RequestBody: a.RequestBody}
	for _, h := range a.RequestHeaders {
		p.RequestHeaders = append(p.RequestHeaders, &casekeeperv1.RequestHeader{Name: h.Name, Value: h.Value})
	}
	return p
}

func statusFromProto(s casekeeperv1.DeliveryStatus) delivery.Status {
	switch s {
	case casekeeperv1.DeliveryStatus_DELIVERY_STATUS_PENDING:
		return delivery.StatusPending
	case casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED:
		return delivery.StatusSucceeded
	case casekeeperv1.DeliveryStatus_DELIVERY_STATUS_RETRYING:
		return delivery.StatusRetrying
	case casekeeperv1.DeliveryStatus_DELIVERY_STATUS_DEAD:
		return delivery.StatusDead
	}
	return 0
}

func statusToProto(s delivery.Status) casekeeperv1.DeliveryStatus {
	switch s {
	case delivery.StatusPending:
		return casekeeperv1.DeliveryStatus_DELIVERY_STATUS_PENDING
	case delivery.StatusSucceeded:
		return casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	case delivery.StatusRetrying:
		return casekeeperv1.DeliveryStatus_DELIVERY_STATUS_RETRYING
	case delivery.StatusDead:
		return casekeeperv1.DeliveryStatus_DELIVERY_STATUS_DEAD
	}
	return casekeeperv1.DeliveryStatus_DELIVERY_STATUS_UNSPECIFIED
}

func deliveryToProto(d delivery.Delivery) *casekeeperv1.Delivery {
	p := &casekeeperv1.Delivery{
		Id: d.ID, EndpointId: d.EndpointID, EventId: d.EventID, EventType: d.EventType, CaseId: d.CaseID,
		Status: statusToProto(d.Status), AttemptCount: int32(d.AttemptCount), LastStatusCode: int32(d.LastStatus),
		LastError: d.LastError, CreatedAt: timestamppb.New(d.CreatedAt), UpdatedAt: timestamppb.New(d.UpdatedAt),
		Test: d.Test,
	}
	if d.Status.Open() {
		p.NextAttemptAt = timestamppb.New(d.NextAttemptAt)
	}
	for _, a := range d.Attempts {
		p.Attempts = append(p.Attempts, attemptToProto(a))
	}
	if d.LastAttempt != nil {
		p.LastAttempt = attemptToProto(*d.LastAttempt)
	}
	return p
}
