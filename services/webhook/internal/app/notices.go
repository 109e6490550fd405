package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/casekeeper/core/pkg/validation"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
	"github.com/casekeeper/core/services/webhook/internal/httpsender"
	"github.com/casekeeper/core/services/webhook/internal/signing"
)

// Operational notices tell a tenant's operators what happened to their endpoints: endpoint.disabled (by the
// service, after a 410 or days of failures), endpoint.failing (the first failure after a success), and
// endpoint.recovered (the first success after that), plus endpoint.transform_limited. Each is raised once, by the
// replica that changed the shared state; it is then listed (the delivery log's database) and queued on
// WEBHOOK_NOTICES, from where one replica sends it, signed, to the tenant's notice URL, with retries.

// NoticeStore is where notices are recorded and the tenants' notice settings live (mongostore.Store).
type NoticeStore interface {
	RecordOperation(ctx context.Context, op delivery.Operation) error
	NoticeSettings(ctx context.Context, tenant string) (delivery.NoticeSettings, error)
}

// Notices raises notices.
type Notices struct {
	Store NoticeStore
	// Queue queues a notice for sending (natsqueue.Notices).
	Queue interface {
		Publish(ctx context.Context, op delivery.Operation) error
	}
	Raised *prometheus.CounterVec // by kind
	Log    *slog.Logger
}

// Raise records the notice and queues it for the tenant's notice URL. A notice that cannot be queued is still
// listed; one that cannot be recorded is still sent.
func (n *Notices) Raise(ctx context.Context, op delivery.Operation) {
	if op.ID == "" {
		op.ID = newID("ntc_")
	}
	if n.Raised != nil {
		n.Raised.WithLabelValues(op.Kind).Inc()
	}
	n.Log.InfoContext(ctx, "operational notice", "kind", op.Kind, "tenant", op.Tenant, "endpoint", op.EndpointID, "notice", op.ID)
	if err := n.Store.RecordOperation(ctx, op); err != nil {
		n.Log.ErrorContext(ctx, "recording operational notice failed", "notice", op.ID, "error", err)
	}
	if err := n.Queue.Publish(ctx, op); err != nil {
		n.Log.ErrorContext(ctx, "queueing operational notice failed", "notice", op.ID, "error", err)
	}
}

// ErrNoticeNotSent is a notice the tenant's notice URL did not take; it is tried again.
var ErrNoticeNotSent = errors.New("notice not sent")

// NoticeSender sends a queued notice to its tenant's notice URL.
type NoticeSender struct {
	Store  NoticeStore
	Sender interface {
		Send(ctx context.Context, r httpsender.Request) httpsender.Outcome
	}
	Sent *prometheus.CounterVec // by result: sent, failed, no_url
	Now  func() time.Time
}

// Send sends the notice, signed like a delivery with the tenant's notice secret. A tenant without a notice URL
// has nothing to send to: the notice is only listed.
func (s *NoticeSender) Send(ctx context.Context, op delivery.Operation) error {
	settings, err := s.Store.NoticeSettings(ctx, op.Tenant)
	if errors.Is(err, delivery.ErrNotFound) || (err == nil && settings.URL == "") {
		s.count("no_url")
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the notice settings of %s: %w", op.Tenant, err)
	}
	body, err := NoticeBody(op)
	if err != nil {
		return err
	}
	signer, err := signing.NewSigner(settings.Secret)
	if err != nil {
		return fmt.Errorf("the notice secret of %s: %w", op.Tenant, err)
	}
	h := http.Header{}
	signer.Sign(h, op.ID, s.Now(), body)
	out := s.Sender.Send(ctx, httpsender.Request{URL: settings.URL, Header: h, Body: body})
	if out.Result.Err != nil || out.Result.StatusCode < 200 || out.Result.StatusCode > 299 {
		s.count("failed")
		if out.Result.Err != nil {
			return fmt.Errorf("%w: %v", ErrNoticeNotSent, out.Result.Err)
		}
		return fmt.Errorf("%w: the notice URL answered %d", ErrNoticeNotSent, out.Result.StatusCode)
	}
	s.count("sent")
	return nil
}

func (s *NoticeSender) count(result string) {
	if s.Sent != nil {
		s.Sent.WithLabelValues(result).Inc()
	}
}

// NoticeBody is what a notice URL receives: the Standard Webhooks envelope, the notice in data.
func NoticeBody(op delivery.Operation) ([]byte, error) {
	type data struct {
		ID          string `json:"id"`
		EndpointID  string `json:"endpoint_id"`
		EndpointURL string `json:"endpoint_url,omitempty"`
		Reason      string `json:"reason,omitempty"`
	}
	return json.Marshal(struct {
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
		Data      data   `json:"data"`
	}{Type: op.Kind, Timestamp: op.At.UTC().Format(time.RFC3339Nano),
		Data: data{ID: op.ID, EndpointID: op.EndpointID, EndpointURL: op.EndpointURL, Reason: op.Reason}})
}

// NoticeSettingsStore reads and writes the tenants' notice settings (mongostore.Store).
type NoticeSettingsStore interface {
	NoticeSettings(ctx context.Context, tenant string) (delivery.NoticeSettings, error)
	PutNoticeSettings(ctx context.Context, n delivery.NoticeSettings) error
	Notices(ctx context.Context, tenant string, since time.Time, limit int) ([]delivery.Operation, error)
}

// NoticeSettings are the tenant admin's use cases of notices: where they go, and what happened.
type NoticeSettings struct {
	Store         NoticeSettingsStore
	AllowLoopback bool
	Now           func() time.Time
}

// NoticesKept is how far back ListNotices reads.
const NoticesKept = 30 * 24 * time.Hour

// Get returns the tenant's settings; a tenant that never saved any has none (an empty URL).
func (u *NoticeSettings) Get(ctx context.Context, tenant string) (delivery.NoticeSettings, error) {
	n, err := u.Store.NoticeSettings(ctx, tenant)
	if errors.Is(err, delivery.ErrNotFound) {
		return delivery.NoticeSettings{Tenant: tenant}, nil
	}
	return n, err
}

// Set changes the notice URL (validated as an endpoint's; empty stops the sending). The first URL gets a secret,
// which stays when the URL changes.
func (u *NoticeSettings) Set(ctx context.Context, tenant, url string) (delivery.NoticeSettings, error) {
	if url != "" {
		var errs validation.Errors
		validateURL(&errs, "url", url, u.AllowLoopback)
		if err := errs.Err(); err != nil {
			return delivery.NoticeSettings{}, err
		}
	}
	n, err := u.Get(ctx, tenant)
	if err != nil {
		return delivery.NoticeSettings{}, err
	}
	if n.Secret == "" {
		if n.Secret, err = signing.NewSecret(); err != nil {
			return delivery.NoticeSettings{}, err
		}
	}
	n.URL, n.UpdatedAt = url, u.Now()
	if err := u.Store.PutNoticeSettings(ctx, n); err != nil {
		return delivery.NoticeSettings{}, err
	}
	return n, nil
}

// List is the tenant's notices of the last NoticesKept, newest first.
func (u *NoticeSettings) List(ctx context.Context, tenant string, limit int) ([]delivery.Operation, error) {
	return u.Store.Notices(ctx, tenant, u.Now().Add(-NoticesKept), limit)
}
