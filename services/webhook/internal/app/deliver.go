package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/tracing"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/proto/webhookbody"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
	"github.com/casekeeper/core/services/webhook/internal/httpsender"
	"github.com/casekeeper/core/services/webhook/internal/jqsandbox"
	"github.com/casekeeper/core/services/webhook/internal/natsqueue"
	"github.com/casekeeper/core/services/webhook/internal/payload"
	"github.com/casekeeper/core/services/webhook/internal/signing"
)

// ErrBadEvent is a job whose event cannot be decoded: it can never succeed and is terminated.
var ErrBadEvent = errors.New("undecodable event")

// ErrRetryLater is an infrastructure failure (database, bus) while handling a job: the message is handed back to
// JetStream for redelivery. Failures of the endpoint itself are never this: they are recorded attempts.
var ErrRetryLater = errors.New("retry later")

// maxLimiterWait is how long an attempt may wait for its endpoint's rate limiter while holding its message; a
// longer wait goes back to the queue as a schedule, freeing the slot.
const maxLimiterWait = 2 * time.Second

// Deliverer makes one attempt of one delivery.
type Deliverer struct {
	Routes *Routes
	Store  Store
	// Notices raises the operational notices (disabled, failing, recovered, transform limited); nil records them
	// in Store only.
	Notices *Notices
	// FailureRuns is the replicas' shared record of endpoints failing since a success (natsqueue.FailureRuns),
	// which makes failing and recovered one notice each; nil raises neither.
	FailureRuns FailureRuns
	// Lanes orders the deliveries of endpoints that deliver per case; nil: they go in any order.
	Lanes      Lanes
	Events     EventSource
	Loader     Loader
	Outcomes   OutcomeLog
	Queue      Queue
	Sender     Sender
	Transforms Transformer
	Policy     delivery.Policy
	GatewayURL string
	Metrics    *Metrics
	Log        *slog.Logger
	Registry   Registry
	Notifier   Notifier
	Now        func() time.Time
	// TransformQuarantine is how long a program that exceeded its limits is set aside; the endpoint's attempts
	// wait that long, so that its backlog does not keep failing at full speed beside other tenants' deliveries.
	TransformQuarantine time.Duration
	// Erased knows the cases redacted lately (natsqueue.ErasedCases): a queued first attempt of one is sent in the
	// thin form. Nil sends what the job carries.
	Erased interface {
		Has(tenant, caseID string) bool
	}
	// Claims makes every attempt but a first one delivered once the claim of one message (natsqueue.AttemptClaims):
	// a resend and a retry that fall due together both read the same state. Nil claims nothing.
	Claims interface {
		Claim(ctx context.Context, deliveryID string, attempt int, holder uint64) (bool, error)
	}
}

// Handle runs the job; a nil error means the message may be acknowledged (including when the attempt failed and
// its retry is scheduled), ErrRetryLater that it must be redelivered.
func (d *Deliverer) Handle(ctx context.Context, j natsqueue.Job) error {
	// Idempotency first. A first attempt delivered for the first time has no record to check (the record is created
	// by that attempt) and is unique by its message id; anything else reads the delivery's state.
	var state *delivery.Delivery
	if j.Attempt > 1 || j.Redelivered {
		var err error
		if state, err = currentState(ctx, d.Outcomes, d.Loader, j.Tenant, j.DeliveryID); err != nil {
			return fmt.Errorf("%w: loading delivery: %v", ErrRetryLater, err)
		}
	}
	if state == nil && j.Attempt > 1 {
		// Attempt 1 creates the record before attempt 2 is scheduled, so this delivery was removed since.
		d.Log.WarnContext(ctx, "job for an unknown delivery dropped", "delivery", j.DeliveryID)
		return nil
	}
	// A message for an attempt already made (a redelivery after a crash, a retry that a resend overtook) sends
	// nothing, and neither does one for a closed delivery unless a resend asked for it.
	if state != nil && (!(state.Status.Open() || j.Resend) || state.AttemptCount >= j.Attempt) {
		d.Metrics.Deliveries.WithLabelValues("stale").Inc()
		if state.Status.Open() && state.AttemptCount >= j.Attempt {
			// The attempt was recorded but its retry may not have been scheduled (crash in between): schedule it
			// again. A schedule already waiting is replaced by this identical one.
			next := j
			next.Attempt = state.AttemptCount + 1
			if err := d.Queue.Schedule(ctx, next, state.NextAttemptAt); err != nil {
				return fmt.Errorf("%w: %v", ErrRetryLater, err)
			}
		}
		return nil
	}
	var ev *casekeeperv1.CaseEvent
	thin := false
	if len(j.Event) == 0 {
		// A retry or a resend (so the state was read above): its event is read back from the stream, where an
		// erased event is no longer found.
		body, err := d.Events.Body(ctx, j.EventSeq, j.EventID)
		switch {
		case errors.Is(err, delivery.ErrEventGone):
			if state == nil { // a first attempt is always queued with its event
				return fmt.Errorf("%w: a first attempt without its event", ErrBadEvent)
			}
			if ev, thin = thinEvent(j, *state); !thin {
				return d.erased(ctx, j, *state)
			}
		case err != nil:
			return fmt.Errorf("%w: %v", ErrRetryLater, err)
		default:
			j.Event = body
		}
	}
	if ev == nil {
		var err error
		if ev, err = events.Decode(j.Event); err != nil {
			return fmt.Errorf("%w: %v", ErrBadEvent, err)
		}
	}
	if ev.GetTenant() != j.Tenant {
		return fmt.Errorf("%w: the event is not of the job's tenant", ErrBadEvent)
	}
	if !thin && d.Erased != nil && ev.GetType() != events.TypeRedacted && d.Erased.Has(ev.GetTenant(), ev.GetCaseId()) {
		// Queued with its event before the case was redacted, sent after: the event without the case.
		ev, thin = withoutCase(ev), true
	}
	now := d.Now()
	id := delivery.Delivery{ID: j.DeliveryID, Tenant: j.Tenant, EndpointID: j.EndpointID, EventID: ev.GetId(),
		EventSeq: j.EventSeq, EventType: ev.GetType(), CaseID: ev.GetCaseId(), CaseVersion: ev.GetCaseVersion()}
	if ev.GetOccurredAt() != nil {
		id.OccurredAt = ev.GetOccurredAt().AsTime()
	}
	route, ok := d.Routes.Get(j.EndpointID)
	if !ok || route.Disabled {
		// Enqueued by an instance that already knew of a change this one has not loaded yet: catch up before
		// judging the attempt.
		if err := d.Routes.Fresh(ctx); err != nil {
			return fmt.Errorf("%w: checking the routing table: %v", ErrRetryLater, err)
		}
		route, ok = d.Routes.Get(j.EndpointID)
	}
	if !ok || route.Disabled {
		reason := "the endpoint was deleted"
		if ok {
			reason = "the endpoint is disabled: " + route.DisabledReason
		}
		return d.record(ctx, j, id, delivery.Attempt{Number: j.Attempt, At: now, Error: reason}, delivery.Verdict{Status: delivery.StatusDead})
	}
	perCase := route.PerCase && d.Lanes != nil
	if perCase {
		wait, err := d.laneWait(ctx, j, ev.GetCaseId(), now)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrRetryLater, err)
		}
		if wait > 0 {
			// Not its case's turn: it comes back when the one ahead may have finished, as a new message, and
			// holds no slot of the endpoint meanwhile.
			d.Metrics.Deliveries.WithLabelValues("waiting_for_case").Inc()
			if err := d.Queue.Schedule(ctx, j, now.Add(wait)); err != nil {
				return fmt.Errorf("%w: %v", ErrRetryLater, err)
			}
			return nil
		}
	}
	if route.Limiter != nil {
		res := route.Limiter.ReserveN(now, 1)
		if wait := res.DelayFrom(now); wait > maxLimiterWait {
			res.CancelAt(now)
			if err := d.Queue.Schedule(ctx, j, now.Add(wait)); err != nil {
				return fmt.Errorf("%w: %v", ErrRetryLater, err)
			}
			return nil
		} else if wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return fmt.Errorf("%w: %v", ErrRetryLater, ctx.Err())
			}
			now = d.Now()
		}
	}

	// Per case, a first attempt can have two messages too: the one that waited for its turn and was scheduled
	// again, and the original, redelivered when its replica stopped before acknowledging it.
	if d.Claims != nil && (j.Attempt > 1 || j.Resend || j.Redelivered || perCase) {
		// Claimed last, right before sending: a job rescheduled above comes back as another message, which must
		// still be able to claim the attempt. A first attempt delivered for the first time is the only message
		// for its attempt (the fan-out's message id), and the hot path does not pay for a claim.
		won, err := d.Claims.Claim(ctx, j.DeliveryID, j.Attempt, j.Seq)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrRetryLater, err)
		}
		if !won {
			d.Metrics.Deliveries.WithLabelValues("stale").Inc()
			return nil
		}
	}
	// The attempt's span is a child of the event's fan-out, so a retry three hours later is still in the trace of
	// the write; the request carries it as its traceparent.
	actx, span := tracing.Tracer().Start(trace.ContextWithRemoteSpanContext(ctx, j.Trace), "deliver webhook",
		trace.WithSpanKind(trace.SpanKindClient))
	out, body := d.attempt(actx, route, j.DeliveryID, ev, thin, now)
	if span.IsRecording() { // with tracing off, the attempt builds no attributes
		span.SetAttributes(attribute.String("casekeeper.delivery_id", j.DeliveryID), attribute.String("casekeeper.endpoint_id", j.EndpointID),
			attribute.Int("casekeeper.attempt", j.Attempt), attribute.String("casekeeper.event_type", ev.GetType()),
			attribute.Int("http.response.status_code", out.Result.StatusCode))
	}
	spanErr := out.Result.Err
	if spanErr == nil && (out.Result.StatusCode < 200 || out.Result.StatusCode > 299) {
		spanErr = fmt.Errorf("the endpoint answered %d", out.Result.StatusCode)
	}
	tracing.End(span, spanErr)
	if errors.Is(out.Result.Err, jqsandbox.ErrNewlyQuarantined) {
		d.transformNotice(actx, route, out.Result.Err, now)
	}
	attempt := attemptRecord(j.Attempt, now, route, out, body)
	d.Metrics.Attempts.WithLabelValues(resultClass(out.Result.StatusCode, out.Result.Err)).Inc()
	d.Metrics.Latency.Observe(out.Latency.Seconds())

	failingSince := time.Time{}
	if f := route.failing.Load(); f != 0 {
		failingSince = time.Unix(0, f)
	}
	verdict := d.Policy.Judge(out.Result, j.Attempt, failingSince, now)
	if err := d.record(actx, j, id, attempt, verdict); err != nil {
		return err
	}
	if perCase && !verdict.Status.Open() {
		// Succeeded or dead: the case's next delivery may go. Should this fail, the next one takes this one
		// out itself when it sees its record closed (laneWait).
		rest, err := d.Lanes.Remove(actx, natsqueue.LaneKey(route.ID, ev.GetCaseId()), j.DeliveryID)
		if err != nil {
			d.Log.WarnContext(actx, "taking a delivery out of its case's lane failed", "delivery", j.DeliveryID, "error", err)
		} else if len(rest) > 0 && rest[0].EventSeq != 0 && rest[0].EventID != "" {
			// The next one waits as a schedule; wake it now rather than when it looks again.
			next := rest[0]
			if err := d.Queue.Wake(actx, natsqueue.Job{DeliveryID: next.DeliveryID, Tenant: j.Tenant, EndpointID: j.EndpointID,
				Attempt: next.Attempt, EventSeq: next.EventSeq, EventID: next.EventID, Resend: next.Resend}); err != nil {
				d.Log.WarnContext(actx, "waking the case's next delivery failed", "delivery", next.DeliveryID, "error", err)
			}
		}
	}
	d.trackFailures(actx, route, verdict, now)
	d.noticeFailureRun(actx, route, verdict, attempt, now)
	if verdict.DisableReason != "" {
		d.disable(actx, route, verdict.DisableReason, now)
	}
	return nil
}

// thinEvent is the event of a delivery whose event the stream no longer holds (erased with its redacted case, or
// past the stream's retention), as far as the thin form needs it: ids, type, case and version, no case data. The
// job names the event and the tenant, the delivery's record the rest; a record written before records kept the
// case version cannot make it (false).
func thinEvent(j natsqueue.Job, state delivery.Delivery) (*casekeeperv1.CaseEvent, bool) {
	if state.CaseVersion == 0 || state.EventID != j.EventID {
		return nil, false
	}
	ev := &casekeeperv1.CaseEvent{Id: j.EventID, Type: state.EventType, Tenant: j.Tenant, CaseId: state.CaseID,
		CaseVersion: state.CaseVersion}
	if !state.OccurredAt.IsZero() {
		ev.OccurredAt = timestamppb.New(state.OccurredAt)
	}
	return ev, true
}

// withoutCase is the event as the thin form needs it: ids, type, case and version, no case data.
func withoutCase(ev *casekeeperv1.CaseEvent) *casekeeperv1.CaseEvent {
	return &casekeeperv1.CaseEvent{Id: ev.GetId(), Type: ev.GetType(), Tenant: ev.GetTenant(), CaseId: ev.GetCaseId(),
		CaseVersion: ev.GetCaseVersion(), OccurredAt: ev.GetOccurredAt()}
}

// erased ends a delivery whose event the stream no longer holds and whose record is too old to make the thin
// form: nothing is sent, and the attempt says why.
func (d *Deliverer) erased(ctx context.Context, j natsqueue.Job, state delivery.Delivery) error {
	state.LastAttempt, state.Attempts = nil, nil
	return d.record(ctx, j, state, delivery.Attempt{Number: j.Attempt, At: d.Now(),
		Error: "not sent: " + delivery.ErrEventGone.Error() + " (its case was redacted, or the event is past the stream's retention)"},
		delivery.Verdict{Status: delivery.StatusDead})
}

// record writes the attempt and, for a retry, schedules the next one; in that order, so that a retry never runs
// before its predecessor is on record.
func (d *Deliverer) record(ctx context.Context, j natsqueue.Job, id delivery.Delivery, a delivery.Attempt, v delivery.Verdict) error {
	if v.Status == delivery.StatusRetrying {
		// Schedules have whole seconds; recording the same time keeps the sweeper's view exact.
		if r := v.NextAttemptAt.Truncate(time.Second); r.Before(v.NextAttemptAt) {
			v.NextAttemptAt = r.Add(time.Second)
		}
	}
	if err := d.Outcomes.Record(ctx, delivery.Outcome{Delivery: id, Attempt: a, Status: v.Status, NextAttemptAt: v.NextAttemptAt}); err != nil {
		return fmt.Errorf("%w: recording attempt: %v", ErrRetryLater, err)
	}
	d.Metrics.Deliveries.WithLabelValues(v.Status.String()).Inc()
	switch v.Status {
	case delivery.StatusRetrying:
		next := j
		next.Attempt = j.Attempt + 1
		if err := d.Queue.Schedule(ctx, next, v.NextAttemptAt); err != nil {
			// The attempt is recorded: the redelivered message takes the stale path and schedules again.
			return fmt.Errorf("%w: %v", ErrRetryLater, err)
		}
	case delivery.StatusDead:
		d.Metrics.DeadLetters.Inc()
		d.Log.InfoContext(ctx, "delivery dead-lettered", "delivery", j.DeliveryID, "endpoint", j.EndpointID, "tenant", j.Tenant,
			"attempts", a.Number, "status_code", a.StatusCode, "error", a.Error)
	}
	return nil
}

// attempt renders, signs and sends the body, and returns the outcome and the body; every failure is part of the
// outcome. thin sends the thin form whatever the endpoint's format: the event without its case, all there is of an
// event no longer stored.
func (d *Deliverer) attempt(ctx context.Context, route *Route, deliveryID string, ev *casekeeperv1.CaseEvent, thin bool, now time.Time) (httpsender.Outcome, []byte) {
	var body []byte
	var err error
	if thin {
		body, err = webhookbody.Thin(ev, d.GatewayURL)
	} else {
		body, err = d.render(ctx, route, ev)
	}
	if err != nil {
		return httpsender.Outcome{Result: delivery.Result{Err: err}}, nil
	}
	return d.send(ctx, route, deliveryID, body, now), body
}

// attemptRecord is what the delivery log keeps of attempt n: the outcome, and the request as it was sent (its
// headers, every custom header's value masked, and the start of its body), so that whoever debugs a receiver
// sees exactly what it got.
func attemptRecord(n int, now time.Time, route *Route, out httpsender.Outcome, body []byte) delivery.Attempt {
	a := delivery.Attempt{Number: n, At: now, StatusCode: out.Result.StatusCode, Latency: out.Latency, Response: out.Response}
	if out.Result.Err != nil {
		a.Error = out.Result.Err.Error()
	}
	if out.Sent == nil {
		return a
	}
	custom := make(map[string]bool, len(route.Headers))
	for k := range route.Headers {
		custom[http.CanonicalHeaderKey(k)] = true
	}
	for _, name := range slices.Sorted(maps.Keys(out.Sent)) {
		for _, v := range out.Sent[name] {
			if custom[name] {
				v = HeaderValueMask
			}
			a.RequestHeaders = append(a.RequestHeaders, delivery.Header{Name: name, Value: v})
		}
	}
	a.RequestBody = string(body[:min(len(body), delivery.RequestExcerpt)])
	return a
}

func (d *Deliverer) render(ctx context.Context, route *Route, ev *casekeeperv1.CaseEvent) ([]byte, error) {
	switch route.Format {
	case delivery.FormatThin:
		return webhookbody.Thin(ev, d.GatewayURL)
	case delivery.FormatJQ:
		if !route.Compiles {
			return nil, fmt.Errorf("%w: the stored program does not compile", payload.ErrTransform)
		}
		full, err := webhookbody.FullAt(ev, route.PayloadVersion)
		if err != nil {
			return nil, err
		}
		return d.Transforms.Run(ctx, route.Tenant, route.JQ, full)
	default:
		return webhookbody.FullAt(ev, route.PayloadVersion)
	}
}

func (d *Deliverer) send(ctx context.Context, route *Route, deliveryID string, body []byte, now time.Time) httpsender.Outcome {
	signer, err := signing.NewSigner(route.SigningSecrets(now)...)
	if err != nil {
		return httpsender.Outcome{Result: delivery.Result{Err: fmt.Errorf("signing: %w", err)}}
	}
	h := make(http.Header, len(route.Headers)+3)
	for k, v := range route.Headers {
		h.Set(k, v)
	}
	signer.Sign(h, deliveryID, now, body)
	h.Set(webhookbody.HeaderVersion, cmp.Or(route.PayloadVersion, webhookbody.Versions[0]))
	// Set after the endpoint's own headers: the trace context is the sender's to state.
	tracing.Inject(ctx, propagation.HeaderCarrier(h))
	return d.Sender.Send(ctx, httpsender.Request{URL: route.URL, Header: h, Body: body})
}

// trackFailures keeps the endpoint's FailingSince: set at the first failure after a success, cleared by a success.
// The in-memory copy makes a run of failures cost one write, not one per attempt.
func (d *Deliverer) trackFailures(ctx context.Context, route *Route, v delivery.Verdict, now time.Time) {
	if v.Status == delivery.StatusSucceeded {
		if route.failing.Swap(0) != 0 {
			if err := d.Store.SetFailingSince(ctx, route.ID, time.Time{}); err != nil {
				d.Log.WarnContext(ctx, "clearing failure run failed", "endpoint", route.ID, "error", err)
			}
		}
		return
	}
	if route.failing.CompareAndSwap(0, now.UnixNano()) {
		if err := d.Store.SetFailingSince(ctx, route.ID, now); err != nil {
			d.Log.WarnContext(ctx, "recording failure run failed", "endpoint", route.ID, "error", err)
		}
	}
}

// disable turns an endpoint off, records an operational event (once, by whichever instance got there first) and
// tells every instance.
func (d *Deliverer) disable(ctx context.Context, route *Route, reason string, now time.Time) {
	if !route.disabling.CompareAndSwap(false, true) {
		return
	}
	changed, err := d.Store.DisableEndpoint(ctx, route.ID, reason, now)
	if err != nil {
		d.Log.ErrorContext(ctx, "disabling endpoint failed", "endpoint", route.ID, "error", err)
		return
	}
	if !changed {
		return
	}
	d.Metrics.Disabled.Inc()
	d.Log.WarnContext(ctx, "endpoint disabled", "endpoint", route.ID, "tenant", route.Tenant, "reason", reason)
	d.notice(ctx, delivery.Operation{Kind: delivery.NoticeDisabled, Tenant: route.Tenant, EndpointID: route.ID,
		EndpointURL: route.URL, Reason: reason, At: now})
	// A disabled endpoint that another instance still routes to gets attempts recorded as dead, not deliveries:
	// recording the change is for speed here, not for correctness.
	if err := d.Registry.Changed(ctx, route.Tenant, route.ID); err != nil {
		d.Log.WarnContext(ctx, "recording the endpoint change in the registry failed", "endpoint", route.ID, "error", err)
	}
	d.Notifier.EndpointsChanged()
}

// transformNotice records, once per quarantine, that the endpoint's program exceeded the limits of a transform: its
// attempts fail until the program is fixed, and the tenant's operators should know why. The endpoint's consumer is
// paused for the quarantine: its attempts (and retries, as they come due) wait instead of failing one after the
// other without running, which would cost every tenant's deliveries CPU and database writes for nothing.
func (d *Deliverer) transformNotice(ctx context.Context, route *Route, err error, now time.Time) {
	d.Metrics.TransformsLimited.Inc()
	d.Log.WarnContext(ctx, "jq transform exceeded its limits", "endpoint", route.ID, "tenant", route.Tenant, "error", err)
	if d.TransformQuarantine > 0 {
		if perr := d.Queue.Pause(ctx, route.ID, now.Add(d.TransformQuarantine)); perr != nil {
			d.Log.WarnContext(ctx, "pausing the endpoint for its program's quarantine failed", "endpoint", route.ID, "error", perr)
		}
	}
	d.notice(ctx, delivery.Operation{Kind: delivery.NoticeTransformLimited, Tenant: route.Tenant, EndpointID: route.ID,
		EndpointURL: route.URL, Reason: err.Error(), At: now})
}

// notice raises an operational notice, or only records it where no notices are sent.
func (d *Deliverer) notice(ctx context.Context, op delivery.Operation) {
	if d.Notices != nil {
		d.Notices.Raise(ctx, op)
		return
	}
	if err := d.Store.RecordOperation(ctx, op); err != nil {
		d.Log.ErrorContext(ctx, "recording operational event failed", "endpoint", op.EndpointID, "error", err)
	}
}

// FailureRuns is the shared record of endpoints failing since a success (natsqueue.FailureRuns).
type FailureRuns interface {
	Failing(endpointID string) bool
	Begin(ctx context.Context, endpointID string, at time.Time) (bool, error)
	End(ctx context.Context, endpointID string, at time.Time) (bool, error)
}

// noticeFailureRun raises endpoint.failing at the first failed attempt after a success and endpoint.recovered at
// the first success after that, once each across the replicas (the shared record decides who raises). The hot
// path asks only the replica's own view of the record: a success of a healthy endpoint costs no call.
func (d *Deliverer) noticeFailureRun(ctx context.Context, route *Route, v delivery.Verdict, a delivery.Attempt, now time.Time) {
	if d.FailureRuns == nil || !a.Counted() || v.DisableReason != "" {
		return // an attempt that disables the endpoint is told by endpoint.disabled
	}
	failing := d.FailureRuns.Failing(route.ID)
	var (
		won  bool
		err  error
		kind string
	)
	switch {
	case v.Status == delivery.StatusSucceeded && failing:
		won, err = d.FailureRuns.End(ctx, route.ID, now)
		kind = delivery.NoticeRecovered
	case v.Status != delivery.StatusSucceeded && !failing:
		won, err = d.FailureRuns.Begin(ctx, route.ID, now)
		kind = delivery.NoticeFailing
	default:
		return
	}
	if err != nil {
		d.Log.WarnContext(ctx, "recording the endpoint's failure run failed", "endpoint", route.ID, "error", err)
		return
	}
	if won {
		reason := a.Error
		if reason == "" {
			reason = fmt.Sprintf("HTTP %d", a.StatusCode)
		}
		d.notice(ctx, delivery.Operation{Kind: kind, Tenant: route.Tenant, EndpointID: route.ID, EndpointURL: route.URL,
			Reason: reason, At: now})
	}
}

// laneRecheck is how soon a delivery waiting for its case's turn looks again when the one ahead is in flight.
const laneRecheck = time.Second

// laneWait says how long the job must wait for its case's turn on a per-case endpoint: zero when it is first in
// the lane (or not in it: a lane lost with its bucket does not hold deliveries back). Ahead of it is the case's
// oldest open delivery; the job looks again when that one's next attempt is due, or in laneRecheck while it is in
// flight. A first delivery whose record is closed but which is still in the lane (its replica stopped before taking
// it out) is taken out here.
func (d *Deliverer) laneWait(ctx context.Context, j natsqueue.Job, caseID string, now time.Time) (time.Duration, error) {
	key := natsqueue.LaneKey(j.EndpointID, caseID)
	for range 8 {
		lane, err := d.Lanes.Lane(ctx, key)
		if err != nil {
			return 0, err
		}
		if len(lane) == 0 || lane[0].DeliveryID == j.DeliveryID ||
			!slices.ContainsFunc(lane, func(e natsqueue.LaneEntry) bool { return e.DeliveryID == j.DeliveryID }) {
			return 0, nil
		}
		head := lane[0]
		st, err := currentState(ctx, d.Outcomes, d.Loader, j.Tenant, head.DeliveryID)
		if err != nil {
			return 0, err
		}
		if st != nil && !st.Status.Open() && st.AttemptCount >= head.Attempt {
			if _, err := d.Lanes.Remove(ctx, key, head.DeliveryID); err != nil {
				return 0, err
			}
			continue
		}
		if st != nil && st.NextAttemptAt.After(now) {
			return st.NextAttemptAt.Sub(now) + laneRecheck, nil
		}
		return laneRecheck, nil
	}
	return laneRecheck, nil
}
