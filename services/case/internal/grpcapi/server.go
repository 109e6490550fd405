// Package grpcapi serves casekeeper.v1.CaseService. It is the one place where domain errors become gRPC statuses.
package grpcapi

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/casekeeper/core/pkg/auth"
	"github.com/casekeeper/core/pkg/grpcserver"
	"github.com/casekeeper/core/pkg/validation"
	pb "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/services/case/internal/app"
	"github.com/casekeeper/core/services/case/internal/kyc"
	"github.com/casekeeper/core/services/case/internal/protoconv"
)

// Policy gives every CaseService method the role it needs.
func Policy() auth.Policy {
	roles := map[string]string{}
	for _, m := range pb.CaseService_ServiceDesc.Methods {
		role := auth.RoleCasesWrite
		switch m.MethodName {
		case "GetCase", "ListCases":
			role = auth.RoleCasesRead
		}
		roles["/"+pb.CaseService_ServiceDesc.ServiceName+"/"+m.MethodName] = role
	}
	return auth.Policy{Roles: roles, Public: auth.IsInfrastructure}
}

// Server implements pb.CaseServiceServer over the use cases.
type Server struct {
	pb.UnimplementedCaseServiceServer
	cases *app.Cases
}

// New returns the gRPC API.
func New(cases *app.Cases) *Server { return &Server{cases: cases} }

const (
	defaultPageSize = 50
	maxPageSize     = 500
)

func (s *Server) CreateCase(ctx context.Context, r *pb.CreateCaseRequest) (*pb.CreateCaseResponse, error) {
	p, err := auth.TenantOf(ctx)
	if err != nil {
		return nil, auth.ToStatus(err)
	}
	in, err := protoconv.NewCase(r)
	if err != nil {
		return nil, toStatus(err)
	}
	c, err := s.cases.Create(ctx, p.Tenant, in)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.CreateCaseResponse{Case: protoconv.Case(c)}, nil
}

func (s *Server) GetCase(ctx context.Context, r *pb.GetCaseRequest) (*pb.GetCaseResponse, error) {
	p, err := auth.TenantOf(ctx)
	if err != nil {
		return nil, auth.ToStatus(err)
	}
	if err := checkID(r.GetId()); err != nil {
		return nil, err
	}
	c, err := s.cases.Get(ctx, p.Tenant, r.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.GetCaseResponse{Case: protoconv.Case(c)}, nil
}

func (s *Server) ListCases(ctx context.Context, r *pb.ListCasesRequest) (*pb.ListCasesResponse, error) {
	p, err := auth.TenantOf(ctx)
	if err != nil {
		return nil, auth.ToStatus(err)
	}
	var errs validation.Errors
	statuses, err := protoconv.Statuses(r.GetStatuses())
	if fe, ok := validation.As(err); ok {
		errs = append(errs, fe...)
	}
	size := int(r.GetPageSize())
	switch {
	case size == 0:
		size = defaultPageSize
	case size < 0 || size > maxPageSize:
		errs.Add("page_size", "must be between 1 and %d", maxPageSize)
	}
	q := app.ListQuery{Statuses: statuses, ExternalRef: r.GetExternalRef(), Limit: size + 1, NewestFirst: r.GetNewestFirst()}
	if name := strings.TrimSpace(r.GetApplicantName()); name != "" {
		errs.Text("applicant_name", name, validation.TextRule{})
		if n := utf8.RuneCountInString(name); n > maxApplicantSearch {
			errs.Add("applicant_name", "must be at most %d characters (got %d)", maxApplicantSearch, n)
		}
		q.ApplicantName = name
	}
	if r.UpdatedAfter != nil {
		if err := r.UpdatedAfter.CheckValid(); err != nil {
			errs.Add("updated_after", "is not a valid timestamp")
		} else {
			q.UpdatedAfter = r.UpdatedAfter.AsTime()
		}
	}
	if tok := r.GetPageToken(); tok != "" {
		id, newestFirst, ok := parseListToken(tok)
		switch {
		case !ok:
			errs.Add("page_token", "is not a token from a previous ListCases answer")
		case newestFirst != q.NewestFirst:
			errs.Add("page_token", "is from a listing in the other order: send the same newest_first")
		}
		q.AfterID = id
	}
	if err := errs.Err(); err != nil {
		return nil, toStatus(err)
	}
	cases, err := s.cases.List(ctx, p.Tenant, q)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &pb.ListCasesResponse{}
	if len(cases) > size {
		// One more than asked came back: there is a next page, starting after the last case shown.
		cases = cases[:size]
		resp.NextPageToken = listToken(cases[size-1].ID, q.NewestFirst)
	}
	for _, c := range cases {
		resp.Cases = append(resp.Cases, protoconv.Case(c))
	}
	return resp, nil
}

func (s *Server) UpdateCase(ctx context.Context, r *pb.UpdateCaseRequest) (*pb.UpdateCaseResponse, error) {
	u, err := protoconv.CaseUpdate(r)
	c, err := s.apply(ctx, r, err, kyc.UpdateCase(u))
	return &pb.UpdateCaseResponse{Case: c}, err
}

func (s *Server) UpdateApplicant(ctx context.Context, r *pb.UpdateApplicantRequest) (*pb.UpdateApplicantResponse, error) {
	c, err := s.apply(ctx, r, nil, kyc.UpdateApplicant(protoconv.Applicant(r.GetApplicant())))
	return &pb.UpdateApplicantResponse{Case: c}, err
}

func (s *Server) AddDocument(ctx context.Context, r *pb.AddDocumentRequest) (*pb.AddDocumentResponse, error) {
	d, err := protoconv.Document(r.GetDocument())
	c, err := s.apply(ctx, r, err, kyc.AddDocument(d, s.cases.NewID))
	return &pb.AddDocumentResponse{Case: c}, err
}

func (s *Server) RecordCheck(ctx context.Context, r *pb.RecordCheckRequest) (*pb.RecordCheckResponse, error) {
	ch, err := protoconv.Check(r.GetCheck())
	c, err := s.apply(ctx, r, err, kyc.RecordCheck(ch, s.cases.NewID))
	return &pb.RecordCheckResponse{Case: c}, err
}

func (s *Server) SetRisk(ctx context.Context, r *pb.SetRiskRequest) (*pb.SetRiskResponse, error) {
	risk, err := protoconv.Risk(r.GetRisk())
	c, err := s.apply(ctx, r, err, kyc.SetRisk(risk))
	return &pb.SetRiskResponse{Case: c}, err
}

func (s *Server) Submit(ctx context.Context, r *pb.SubmitRequest) (*pb.SubmitResponse, error) {
	c, err := s.apply(ctx, r, nil, kyc.Submit())
	return &pb.SubmitResponse{Case: c}, err
}

func (s *Server) StartReview(ctx context.Context, r *pb.StartReviewRequest) (*pb.StartReviewResponse, error) {
	c, err := s.apply(ctx, r, nil, kyc.StartReview(r.GetReviewer()))
	return &pb.StartReviewResponse{Case: c}, err
}

func (s *Server) PutOnHold(ctx context.Context, r *pb.PutOnHoldRequest) (*pb.PutOnHoldResponse, error) {
	c, err := s.apply(ctx, r, nil, kyc.PutOnHold(r.GetReason()))
	return &pb.PutOnHoldResponse{Case: c}, err
}

func (s *Server) ResumeReview(ctx context.Context, r *pb.ResumeReviewRequest) (*pb.ResumeReviewResponse, error) {
	c, err := s.apply(ctx, r, nil, kyc.ResumeReview())
	return &pb.ResumeReviewResponse{Case: c}, err
}

func (s *Server) CompleteReview(ctx context.Context, r *pb.CompleteReviewRequest) (*pb.CompleteReviewResponse, error) {
	answer, err := protoconv.ReviewAnswer(r.GetAnswer())
	c, err := s.apply(ctx, r, err, kyc.CompleteReview(kyc.Review{
		Answer: answer, RejectLabels: r.GetRejectLabels(), Reviewer: r.GetReviewer(), Comment: r.GetComment(),
	}))
	return &pb.CompleteReviewResponse{Case: c}, err
}

func (s *Server) RequestResubmission(ctx context.Context, r *pb.RequestResubmissionRequest) (*pb.RequestResubmissionResponse, error) {
	c, err := s.apply(ctx, r, nil, kyc.RequestResubmission(kyc.Review{
		RejectLabels: r.GetRejectLabels(), Reviewer: r.GetReviewer(), Comment: r.GetComment(),
	}))
	return &pb.RequestResubmissionResponse{Case: c}, err
}

func (s *Server) Expire(ctx context.Context, r *pb.ExpireRequest) (*pb.ExpireResponse, error) {
	c, err := s.apply(ctx, r, nil, kyc.Expire(r.GetReason()))
	return &pb.ExpireResponse{Case: c}, err
}

func (s *Server) Redact(ctx context.Context, r *pb.RedactRequest) (*pb.RedactResponse, error) {
	c, err := s.apply(ctx, r, nil, kyc.Redact(r.GetReason()))
	return &pb.RedactResponse{Case: c}, err
}

// writeRequest is what every write request has: the case id and an optional expected version.
type writeRequest interface {
	GetId() string
	GetExpectedVersion() int64
}

// apply authenticates, validates the common fields, runs the change and converts the outcome. convErr carries a
// failure of the request's own conversion, reported together with the common fields'.
func (s *Server) apply(ctx context.Context, r writeRequest, convErr error, change kyc.Change) (*pb.Case, error) {
	p, err := auth.TenantOf(ctx)
	if err != nil {
		return nil, auth.ToStatus(err)
	}
	var errs validation.Errors
	if uuid.Validate(r.GetId()) != nil {
		errs.Add("id", "must be a case id (UUID)")
	}
	if r.GetExpectedVersion() < 0 {
		errs.Add("expected_version", "must not be negative")
	}
	if fe, ok := validation.As(convErr); ok {
		errs = append(errs, fe...)
	}
	if err := errs.Err(); err != nil {
		return nil, toStatus(err)
	}
	c, err := s.cases.Apply(ctx, p.Tenant, r.GetId(), r.GetExpectedVersion(), change)
	if err != nil {
		return nil, toStatus(err)
	}
	return protoconv.Case(c), nil
}

func checkID(id string) error {
	if uuid.Validate(id) != nil {
		var errs validation.Errors
		errs.Add("id", "must be a case id (UUID)")
		return grpcserver.InvalidArgument(errs)
	}
	return nil
}

// toStatus maps domain errors to gRPC statuses. Anything unknown passes through and is masked as Internal by the
// server's interceptor, which logs it.
func toStatus(err error) error {
	if fe, ok := validation.As(err); ok {
		return grpcserver.InvalidArgument(fe)
	}
	switch {
	case errors.Is(err, kyc.ErrNotFound):
		return status.Error(codes.NotFound, "case not found")
	case errors.Is(err, kyc.ErrVersionMismatch):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, app.ErrContention):
		return status.Error(codes.Aborted, "the case is being changed by many writers at once; retry the write")
	case errors.Is(err, app.ErrUnavailable):
		// Nothing is acknowledged that the stream did not store: the caller retries (reading the case first when
		// its write was not idempotent).
		return status.Error(codes.Unavailable, "the case store cannot take the write now; retry")
	case errors.Is(err, kyc.ErrInvalidTransition), errors.Is(err, kyc.ErrClosed):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "the call ran out of time")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "the call was canceled")
	}
	return err
}

// maxApplicantSearch bounds the applicant-name search text, in characters.
const maxApplicantSearch = 200

// listToken is a ListCases page token: the last id of the page, and "-" before it in a newest-first listing, so
// that a token is never read in the other order.
func listToken(lastID string, newestFirst bool) string {
	if newestFirst {
		lastID = "-" + lastID
	}
	return base64.RawURLEncoding.EncodeToString([]byte(lastID))
}

func parseListToken(tok string) (lastID string, newestFirst, ok bool) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", false, false
	}
	lastID, newestFirst = strings.CutPrefix(string(raw), "-")
	return lastID, newestFirst, uuid.Validate(lastID) == nil
}
