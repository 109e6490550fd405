package app

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/casekeeper/core/pkg/lifecycle"
	"github.com/casekeeper/core/pkg/validation"
	"github.com/casekeeper/core/pkg/webhooks"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/proto/webhookbody"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
	"github.com/casekeeper/core/services/webhook/internal/payload"
	"github.com/casekeeper/core/services/webhook/internal/signing"
)

// Endpoints holds the use cases of managing endpoints.
type Endpoints struct {
	Store         Store
	Queue         Queue
	Routes        *Routes
	Registry      Registry
	Notifier      Notifier
	Deliverer     *Deliverer
	AllowLoopback bool
	Log           *slog.Logger
	Now           func() time.Time
}

// HeaderValueMask stands for every custom header value the API returns: the values are often the receiver's
// credentials, so they are write-only. Sent back in an update, it keeps the stored value of that header.
const HeaderValueMask = "••••••"

// Writable fields of an endpoint, as update_mask paths.
var writable = []string{"url", "description", "event_types", "disabled", "disabled_reason", "headers",
	"payload_format", "jq_transform", "rate_limit_per_second", "max_concurrency", "payload_version", "ordering"}

var lowerBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID is prefix and 24 random characters (15 bytes): endpoint and event ids.
func newID(prefix string) string { return randomID(prefix, 15) }

// newDeliveryID is a random delivery id shaped like those delivery.DeliveryID makes (msg_ and 26 characters), for
// deliveries of no event, such as test events.
func newDeliveryID() string { return randomID("msg_", 16) }

func randomID(prefix string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return prefix + lowerBase32.EncodeToString(b)
}

// Create validates and stores a new endpoint with its first secret.
func (u *Endpoints) Create(ctx context.Context, tenant string, e delivery.Endpoint) (delivery.Endpoint, string, error) {
	if e.Format == 0 {
		e.Format = delivery.FormatFull
	}
	if e.PayloadVersion == "" {
		e.PayloadVersion = webhookbody.CurrentVersion
	}
	if errs := keepMaskedHeaders(&e, nil); len(errs) > 0 {
		return delivery.Endpoint{}, "", errs
	}
	if errs := validateEndpoint(e, "endpoint.", u.AllowLoopback); len(errs) > 0 {
		return delivery.Endpoint{}, "", errs
	}
	if e.Format == delivery.FormatJQ {
		if err := u.checkTransform(ctx, tenant, e.JQ); err != nil {
			return delivery.Endpoint{}, "", err
		}
	}
	secret, err := newSecret(e.Ed25519)
	if err != nil {
		return delivery.Endpoint{}, "", err
	}
	e.ID, e.Tenant = newID("ep_"), tenant
	// Routed from the registry's time of its creation: the clock the case events carry too.
	now, err := u.Registry.Created(ctx, e.ID)
	if err != nil {
		u.Log.Warn("the registry did not take a new endpoint; nothing is stored", "error", err)
		return delivery.Endpoint{}, "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	// To the millisecond, as the database keeps it: every instance routes by the same instant.
	now = now.Truncate(time.Millisecond)
	e.CreatedAt, e.UpdatedAt = now, now
	e.Secrets = []delivery.Secret{{Value: secret, CreatedAt: now}}
	e.FailingSince = time.Time{}
	if !e.Disabled {
		e.DisabledReason = ""
	}
	if err := u.Store.CreateEndpoint(ctx, e); err != nil {
		return delivery.Endpoint{}, "", err
	}
	if err := u.changed(ctx, e); err != nil {
		return delivery.Endpoint{}, "", err
	}
	return e, secret, nil
}

// Get returns one endpoint of the tenant.
func (u *Endpoints) Get(ctx context.Context, tenant, id string) (delivery.Endpoint, error) {
	return u.Store.GetEndpoint(ctx, tenant, id)
}

// List pages through the tenant's endpoints in id order; the page token is the last id.
func (u *Endpoints) List(ctx context.Context, tenant, after string, size int) ([]delivery.Endpoint, string, error) {
	eps, err := u.Store.ListEndpoints(ctx, tenant, after, size+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(eps) > size {
		eps = eps[:size]
		next = eps[size-1].ID
	}
	return eps, next, nil
}

// Update applies the fields named by mask (every writable field when empty) from patch.
func (u *Endpoints) Update(ctx context.Context, tenant string, patch delivery.Endpoint, mask []string) (delivery.Endpoint, error) {
	var errs validation.Errors
	if len(mask) == 0 {
		mask = writable
	}
	for _, p := range mask {
		if !slices.Contains(writable, p) {
			errs.Add("update_mask", "%q is not a writable field (one of %s)", p, strings.Join(writable, ", "))
		}
	}
	if len(errs) > 0 {
		return delivery.Endpoint{}, errs
	}
	cur, err := u.Store.GetEndpoint(ctx, tenant, patch.ID)
	if err != nil {
		return delivery.Endpoint{}, err
	}
	next := cur
	for _, p := range mask {
		switch p {
		case "url":
			next.URL = patch.URL
		case "description":
			next.Description = patch.Description
		case "event_types":
			next.EventTypes = patch.EventTypes
		case "disabled":
			next.Disabled = patch.Disabled
		case "disabled_reason":
			next.DisabledReason = patch.DisabledReason
		case "headers":
			next.Headers = patch.Headers
			if errs := keepMaskedHeaders(&next, cur.Headers); len(errs) > 0 {
				return delivery.Endpoint{}, errs
			}
		case "payload_format":
			next.Format = patch.Format
			if next.Format == 0 {
				next.Format = delivery.FormatFull
			}
		case "jq_transform":
			next.JQ = patch.JQ
		case "rate_limit_per_second":
			next.RateLimit = patch.RateLimit
		case "max_concurrency":
			next.MaxConcurrency = patch.MaxConcurrency
		case "ordering":
			next.PerCase = patch.PerCase
		case "payload_version":
			// Empty in an update of every field (an old client's) keeps the pinned version: only naming a
			// version moves the endpoint to it.
			if patch.PayloadVersion != "" {
				next.PayloadVersion = patch.PayloadVersion
			}
		}
	}
	if next.Format != delivery.FormatJQ && slices.Contains(mask, "payload_format") && !slices.Contains(mask, "jq_transform") {
		next.JQ = "" // switching away from jq drops the program instead of failing on it
	}
	if errs := validateEndpoint(next, "endpoint.", u.AllowLoopback); len(errs) > 0 {
		return delivery.Endpoint{}, errs
	}
	// A stored program is not tried again on every change of another field: it passed when it was saved.
	if next.Format == delivery.FormatJQ && (next.JQ != cur.JQ || cur.Format != delivery.FormatJQ) {
		if err := u.checkTransform(ctx, tenant, next.JQ); err != nil {
			return delivery.Endpoint{}, err
		}
	}
	if !next.Disabled {
		next.DisabledReason = ""
		if cur.Disabled {
			next.FailingSince = time.Time{} // re-enabled: the failure run starts over
		}
	} else if next.DisabledReason == "" {
		next.DisabledReason = "disabled by an administrator"
	}
	next.UpdatedAt = u.Now()
	if err := u.Store.ReplaceEndpoint(ctx, next); err != nil {
		return delivery.Endpoint{}, err
	}
	if err := u.changed(ctx, next); err != nil {
		return delivery.Endpoint{}, err
	}
	// A new program or format ends a pause its old program's quarantine put on the endpoint (Deliverer); the new
	// program is not in quarantine.
	if next.JQ != cur.JQ || next.Format != cur.Format {
		if err := u.Queue.Resume(ctx, next.ID); err != nil {
			u.Log.Warn("resuming the endpoint after its program changed failed; it resumes when the pause ends", "endpoint", next.ID, "error", err)
		}
	}
	return next, nil
}

// Delete removes the endpoint, its consumer and its waiting attempts. Its deliveries stay on record.
func (u *Endpoints) Delete(ctx context.Context, tenant, id string) error {
	if err := u.Store.DeleteEndpoint(ctx, tenant, id); err != nil {
		return err
	}
	if err := u.Queue.RemoveEndpoint(ctx, tenant, id); err != nil {
		return fmt.Errorf("removing the endpoint's queue: %w", err)
	}
	if err := u.changed(ctx, delivery.Endpoint{ID: id, Tenant: tenant}); err != nil {
		return err
	}
	if err := u.Registry.Removed(ctx, id); err != nil {
		// Only a stamp no one reads any more is left behind.
		u.Log.Warn("removing a deleted endpoint's creation stamp failed", "endpoint", id, "error", err)
	}
	return nil
}

// Secrets returns the signing secrets in use, newest first.
func (u *Endpoints) Secrets(ctx context.Context, tenant, id string) ([]delivery.Secret, error) {
	e, err := u.Store.GetEndpoint(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	now := u.Now()
	var out []delivery.Secret
	for _, s := range e.Secrets {
		if s.ExpiresAt.IsZero() || now.Before(s.ExpiresAt) {
			out = append(out, s)
		}
	}
	return out, nil
}

// newSecret is a whsec_ HMAC secret, or a whsk_ Ed25519 signing key.
func newSecret(ed25519 bool) (string, error) {
	if ed25519 {
		return signing.NewSigningKey()
	}
	return signing.NewSecret()
}

// Rotate makes a new secret, of the endpoint's scheme or of the one asked for (ed25519: nil keeps the scheme); the
// previous one signs beside it for delivery.SecretOverlap.
func (u *Endpoints) Rotate(ctx context.Context, tenant, id string, ed25519 *bool) (delivery.Secret, error) {
	e, err := u.Store.GetEndpoint(ctx, tenant, id)
	if err != nil {
		return delivery.Secret{}, err
	}
	scheme := e.SignsEd25519()
	if ed25519 != nil {
		scheme = *ed25519
	}
	secret, err := newSecret(scheme)
	if err != nil {
		return delivery.Secret{}, err
	}
	now := u.Now()
	s := e.Rotate(secret, now)
	e.UpdatedAt = now
	if err := u.Store.ReplaceEndpoint(ctx, e); err != nil {
		return delivery.Secret{}, err
	}
	if err := u.changed(ctx, e); err != nil {
		return delivery.Secret{}, err
	}
	return s, nil
}

// SendTest sends a sample event of the type (SampleEvent; "" is webhooks.TypeTest) to the endpoint now, whether
// or not the endpoint is enabled or subscribed to the type, and returns the attempt. The attempt goes to the
// endpoint's delivery log too, as a delivery marked test that is never retried: a test asks what the endpoint
// answers now, and a retry later would not tell the administrator who asked.
func (u *Endpoints) SendTest(ctx context.Context, tenant, id, eventType string) (delivery.Attempt, error) {
	if eventType == "" {
		eventType = webhooks.TypeTest
	}
	now := u.Now()
	ev, ok := SampleEvent(tenant, eventType, now)
	if !ok {
		return delivery.Attempt{}, validation.Errors{{Field: "event_type", Message: fmt.Sprintf(
			"must be %s or one of the case event types (%s)", webhooks.TypeTest, strings.Join(sampleSteps, ", "))}}
	}
	e, err := u.Store.GetEndpoint(ctx, tenant, id)
	if err != nil {
		return delivery.Attempt{}, err
	}
	route := &Route{Endpoint: e}
	if e.Format == delivery.FormatJQ {
		_, err := payload.Compile(e.JQ)
		route.Compiles = err == nil
	}
	deliveryID := newDeliveryID() // every test is a delivery of its own
	out, body := u.Deliverer.attempt(ctx, route, deliveryID, ev, false, now)
	a := attemptRecord(1, now, route, out, body)
	status := delivery.StatusDead
	if out.Result.Succeeded() {
		status = delivery.StatusSucceeded
	}
	logged := delivery.Outcome{Delivery: delivery.Delivery{ID: deliveryID, Tenant: tenant, EndpointID: id, EventID: ev.GetId(),
		EventType: ev.GetType(), CaseID: ev.GetCaseId(), CaseVersion: ev.GetCaseVersion(), OccurredAt: now, CreatedAt: now,
		Test: true}, Attempt: a, Status: status}
	if err := u.Deliverer.Outcomes.Record(ctx, logged); err != nil {
		// The test was made and its answer is returned; only its line in the log is missing.
		u.Log.Warn("a test event's attempt is not in the delivery log", "endpoint", id, "error", err)
	}
	return a, nil
}

// ErrTransformFailed is a preview whose program failed at run time.
var ErrTransformFailed = errors.New("transform failed")

// Preview runs a jq program on the sample event's full payload, in the tenant's share of the transform workers.
func (u *Endpoints) Preview(ctx context.Context, tenant, program string) (input, output string, err error) {
	if strings.TrimSpace(program) == "" {
		return "", "", validation.Errors{{Field: "jq_transform", Message: "is required"}}
	}
	if len(program) > maxJQLength {
		return "", "", validation.Errors{{Field: "jq_transform", Message: fmt.Sprintf("must be at most %d bytes", maxJQLength)}}
	}
	var errs validation.Errors
	if errs.Text("jq_transform", program, validation.TextRule{Multiline: true}); len(errs) > 0 {
		return "", "", errs
	}
	if _, err := payload.Compile(program); err != nil {
		return "", "", validation.Errors{{Field: "jq_transform", Message: err.Error()}}
	}
	full, err := webhookbody.Full(mustSample("example", u.Now()))
	if err != nil {
		return "", "", err
	}
	out, err := u.Deliverer.Transforms.Run(ctx, tenant, program, full)
	if err != nil {
		return string(full), "", validation.Errors{{Field: "jq_transform", Message: err.Error()}}
	}
	return string(full), string(out), nil
}

// checkTransform refuses a program that does not finish within the limits of a transform on the sample event: one
// that cannot finish on any event (def f: f; f) or that explodes whatever its input ("x" * 400000000). A program
// that merely errors on the sample (a field the sample lacks) is accepted: real events may have it.
func (u *Endpoints) checkTransform(ctx context.Context, tenant, program string) error {
	full, err := webhookbody.Full(mustSample(tenant, u.Now()))
	if err != nil {
		return err
	}
	if _, err := u.Deliverer.Transforms.Run(ctx, tenant, program, full); errors.Is(err, payload.ErrLimit) {
		return validation.Errors{{Field: "endpoint.jq_transform", Message: fmt.Sprintf(
			"does not finish within the limits of a transform (%s of CPU time, %d KiB of output) on the sample event: %v",
			payload.TransformTimeout, payload.MaxBodyBytes>>10,
			strings.TrimPrefix(err.Error(), payload.ErrTransform.Error()+": "+payload.ErrLimit.Error()+": "))}}
	}
	return nil
}

// mustSample is the webhooks.TypeTest sample, which Preview and the save-time check of a program run on.
func mustSample(tenant string, now time.Time) *casekeeperv1.CaseEvent {
	ev, ok := SampleEvent(tenant, webhooks.TypeTest, now)
	if !ok {
		panic("no sample of " + webhooks.TypeTest) // there always is one
	}
	return ev
}

// ErrUnavailable is a change that is stored but could not be recorded in the registry (NATS is away): the caller
// repeats the call; until a later change is recorded, the other instances learn of it by their periodic reload.
var ErrUnavailable = errors.New("the endpoint registry is unavailable")

// changed records the stored change in the registry, which every instance's fan-out checks before it routes an
// event, then reloads this instance's table at once and announces the change, so that idle instances start or stop
// the endpoint's delivery loop without waiting for their periodic reload.
func (u *Endpoints) changed(ctx context.Context, e delivery.Endpoint) error {
	var err error
	for attempt := range 3 {
		if err = u.Registry.Changed(ctx, e.Tenant, e.ID); err == nil {
			break
		}
		if !lifecycle.Sleep(ctx, time.Duration(attempt+1)*200*time.Millisecond) {
			break
		}
	}
	if err != nil {
		u.Log.Warn("an endpoint change is stored but the registry did not take it", "endpoint", e.ID, "error", err)
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	_ = u.Routes.Reload(ctx)
	u.Notifier.EndpointsChanged()
	return nil
}

// keepMaskedHeaders replaces each header value that is HeaderValueMask by the stored value of the same header
// (stored: nil on create); a mask with nothing stored behind it is refused.
func keepMaskedHeaders(e *delivery.Endpoint, stored map[string]string) validation.Errors {
	var errs validation.Errors
	var kept map[string]string
	for k, v := range e.Headers {
		if v != HeaderValueMask {
			continue
		}
		old, ok := stored[k]
		if !ok {
			errs.Add("endpoint.headers", "the value of %q is the mask %s, which keeps a stored value; this header has none: give its value", k, HeaderValueMask)
			continue
		}
		if kept == nil {
			kept = maps.Clone(e.Headers)
		}
		kept[k] = old
	}
	if kept != nil {
		e.Headers = kept
	}
	return errs
}
