package dashboard

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/webhooks"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// endpointIDPattern is checked before an id reaches a URL or a backing call; the webhook service checks it again.
var endpointIDPattern = regexp.MustCompile(`^ep_[a-z2-7]{1,64}$`)

// endpointView is an endpoint as the pages show it.
type endpointView struct {
	ID             string
	URL            string
	Description    string
	EventTypes     []string
	Disabled       bool
	DisabledReason string
	Format         string
	JQ             string
	Headers        []header
	RateLimit      int32
	MaxConcurrency int32
	Created        time.Time
	Updated        time.Time
	// FailingSince is set while every attempt has failed since a success.
	FailingSince time.Time
	// PayloadVersion is the body shape the endpoint is pinned to.
	PayloadVersion string
	// PerCase is ordering PER_CASE: one event of a case at a time, in version order.
	PerCase bool
	// Ed25519 is the signature scheme of the newest secret.
	Ed25519 bool
}

type header struct{ Name, Value string }

// headerValueMask is what the webhook service shows for every custom header value (write-only).
const headerValueMask = "••••••"

var formatNames = map[casekeeperv1.PayloadFormat]string{
	casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_FULL: "full",
	casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_THIN: "thin",
	casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_JQ:   "jq",
}

func viewEndpoint(e *casekeeperv1.Endpoint) endpointView {
	v := endpointView{
		ID: e.GetId(), URL: e.GetUrl(), Description: e.GetDescription(), EventTypes: e.GetEventTypes(),
		Disabled: e.GetDisabled(), DisabledReason: e.GetDisabledReason(), Format: formatNames[e.GetPayloadFormat()],
		JQ: e.GetJqTransform(), RateLimit: e.GetRateLimitPerSecond(), MaxConcurrency: e.GetMaxConcurrency(),
		Created: e.GetCreatedAt().AsTime(), Updated: e.GetUpdatedAt().AsTime(),
	}
	if e.GetFailingSince() != nil {
		v.FailingSince = e.GetFailingSince().AsTime()
	}
	v.PayloadVersion = e.GetPayloadVersion()
	v.PerCase = e.GetOrdering() == casekeeperv1.EndpointOrdering_ENDPOINT_ORDERING_PER_CASE
	v.Ed25519 = e.GetSignatureScheme() == casekeeperv1.SignatureScheme_SIGNATURE_SCHEME_ED25519
	if v.Format == "" {
		v.Format = "full"
	}
	// Header values are often the receiver's credentials: the webhook service returns them masked, and the
	// dashboard shows the mask whatever it is given. Saved back unchanged, the mask keeps the stored value.
	for k := range e.GetHeaders() {
		v.Headers = append(v.Headers, header{k, headerValueMask})
	}
	slices.SortFunc(v.Headers, func(a, b header) int { return strings.Compare(a.Name, b.Name) })
	return v
}

type endpointsPage struct {
	Endpoints []endpointView
	NextPage  string
	Banners   []banner
	Notices   noticesPanel
}

func (h *Handler) listEndpoints(w http.ResponseWriter, r *request) {
	if p, ok := h.endpointsPage(w, r); ok {
		h.render(w, r.Request, r.sess, http.StatusOK, "endpoints", "Webhook Settings", p)
	}
}

// endpointsPage reads what the Webhook Settings page shows; on a failed read it has rendered the error page.
func (h *Handler) endpointsPage(w http.ResponseWriter, r *request) (endpointsPage, bool) {
	resp, err := h.opts.Webhooks.ListEndpoints(r.ctx, &casekeeperv1.ListEndpointsRequest{PageSize: 100, PageToken: r.URL.Query().Get("page")})
	if err != nil {
		h.backendError(w, r, err)
		return endpointsPage{}, false
	}
	p := endpointsPage{NextPage: resp.GetNextPageToken()}
	for _, e := range resp.GetEndpoints() {
		p.Endpoints = append(p.Endpoints, viewEndpoint(e))
	}
	p.Banners, p.Notices = bannersOf(p.Endpoints), h.noticesPanel(r)
	return p, true
}

func (h *Handler) newEndpoint(w http.ResponseWriter, r *request) {
	f := &endpointForm{Format: "full", EventTypes: map[string]bool{}, Errors: map[string]string{}, AllEventTypes: events.Types}
	h.render(w, r.Request, r.sess, http.StatusOK, "endpoint_form", "Add a webhook endpoint", f)
}

func (h *Handler) createEndpoint(w http.ResponseWriter, r *request) {
	f, e := readEndpointForm(r.Request, "")
	if h.previewOrInvalid(w, r, f) {
		return
	}
	resp, err := h.opts.Webhooks.CreateEndpoint(r.ctx, &casekeeperv1.CreateEndpointRequest{Endpoint: e})
	if h.formFailed(w, r, f, err) {
		return
	}
	r.sess.setFlash(&flash{Kind: "ok",
		Text:    "Saved. The webhook integration is active: Case-keeper now delivers events to this URL, signed with the secret below. Keep it in your receiver's configuration.",
		Secrets: []secretView{{Secret: resp.GetSecret(), Created: resp.GetEndpoint().GetCreatedAt().AsTime()}}})
	http.Redirect(w, r.Request, "/dashboard/webhooks/"+resp.GetEndpoint().GetId(), http.StatusSeeOther)
}

func (h *Handler) editEndpoint(w http.ResponseWriter, r *request) {
	id, ok := h.endpointID(w, r)
	if !ok {
		return
	}
	resp, err := h.opts.Webhooks.GetEndpoint(r.ctx, &casekeeperv1.GetEndpointRequest{Id: id})
	if err != nil {
		h.backendError(w, r, err)
		return
	}
	h.render(w, r.Request, r.sess, http.StatusOK, "endpoint_form", "Edit webhook endpoint", formFromEndpoint(viewEndpoint(resp.GetEndpoint())))
}

// editableFields are the update_mask paths the form owns; enable/disable have their own buttons.
var editableFields = []string{"url", "description", "event_types", "headers", "payload_format", "jq_transform",
	"rate_limit_per_second", "max_concurrency", "ordering"}

func (h *Handler) updateEndpoint(w http.ResponseWriter, r *request) {
	id, ok := h.endpointID(w, r)
	if !ok {
		return
	}
	f, e := readEndpointForm(r.Request, id)
	if h.previewOrInvalid(w, r, f) {
		return
	}
	_, err := h.opts.Webhooks.UpdateEndpoint(r.ctx, &casekeeperv1.UpdateEndpointRequest{
		Endpoint: e, UpdateMask: &fieldmaskpb.FieldMask{Paths: editableFields}})
	if h.formFailed(w, r, f, err) {
		return
	}
	r.sess.setFlash(&flash{Kind: "ok", Text: "Saved. The new settings apply to the next delivery."})
	http.Redirect(w, r.Request, "/dashboard/webhooks/"+id, http.StatusSeeOther)
}

type endpointPage struct {
	Endpoint     endpointView
	Deliveries   []deliveryView
	StatusFilter string
	NextPage     string
	ThisPage     string
	RecoverSince string
	// TestEventTypes are what "Send test event" offers: webhook.test first, then every case event type.
	TestEventTypes []string
	// Banners warn that the endpoint is failing or disabled.
	Banners []banner
	// Health is the last 24 hours and 7 days; HealthError says why it is missing, when it is.
	Health      []healthView
	HealthError string
}

// showEndpoint is the endpoint's page: settings, enable/disable, secret, test event and the delivery log.
func (h *Handler) showEndpoint(w http.ResponseWriter, r *request) {
	id, ok := h.endpointID(w, r)
	if !ok {
		return
	}
	ep, err := h.opts.Webhooks.GetEndpoint(r.ctx, &casekeeperv1.GetEndpointRequest{Id: id})
	if err != nil {
		h.backendError(w, r, err)
		return
	}
	q := r.URL.Query()
	view := viewEndpoint(ep.GetEndpoint())
	p := endpointPage{Endpoint: view, ThisPage: q.Get("page"), Banners: bannersOf([]endpointView{view}),
		RecoverSince:   h.now().Add(-24 * time.Hour).UTC().Format("2006-01-02T15:04"),
		TestEventTypes: append([]string{webhooks.TypeTest}, events.Types...)}
	req := &casekeeperv1.ListDeliveriesRequest{EndpointId: id, PageSize: deliveriesPerPage, PageToken: q.Get("page")}
	if st, ok := statusFilters[q.Get("status")]; ok {
		req.Status, p.StatusFilter = st, q.Get("status")
	}
	dl, err := h.opts.Webhooks.ListDeliveries(r.ctx, req)
	if err != nil {
		h.backendError(w, r, err)
		return
	}
	// The page is still useful without its charts: a failed health read is said on the page, not an error page.
	if health, err := h.opts.Webhooks.GetEndpointHealth(r.ctx, &casekeeperv1.GetEndpointHealthRequest{Id: id}); err != nil {
		h.opts.Log.Warn("endpoint health unavailable", "endpoint", id, "error", err.Error())
		p.HealthError = "The delivery health could not be read just now; reload the page to try again."
	} else {
		p.Health = healthViews(health)
	}
	p.NextPage = dl.GetNextPageToken()
	// One call for the page: the list carries each delivery's last attempt (latency, response excerpt).
	for _, d := range dl.GetDeliveries() {
		p.Deliveries = append(p.Deliveries, viewDelivery(d))
	}
	h.render(w, r.Request, r.sess, http.StatusOK, "endpoint", "Webhook endpoint", p)
}

func (h *Handler) setEnabled(enable bool) pageFunc {
	return func(w http.ResponseWriter, r *request) {
		id, ok := h.endpointID(w, r)
		if !ok {
			return
		}
		e := &casekeeperv1.Endpoint{Id: id, Disabled: !enable}
		paths := []string{"disabled"}
		if !enable {
			e.DisabledReason = "disabled in the dashboard by " + r.sess.user
			paths = append(paths, "disabled_reason")
		}
		if _, err := h.opts.Webhooks.UpdateEndpoint(r.ctx, &casekeeperv1.UpdateEndpointRequest{
			Endpoint: e, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}}); err != nil {
			h.backendError(w, r, err)
			return
		}
		text := "Disabled. No events are delivered to this endpoint until you enable it again."
		if enable {
			text = "Enabled. Events are delivered to this endpoint again."
		}
		r.sess.setFlash(&flash{Kind: "ok", Text: text})
		http.Redirect(w, r.Request, "/dashboard/webhooks/"+id, http.StatusSeeOther)
	}
}

func (h *Handler) deleteEndpoint(w http.ResponseWriter, r *request) {
	id, ok := h.endpointID(w, r)
	if !ok {
		return
	}
	if _, err := h.opts.Webhooks.DeleteEndpoint(r.ctx, &casekeeperv1.DeleteEndpointRequest{Id: id}); err != nil {
		h.backendError(w, r, err)
		return
	}
	r.sess.setFlash(&flash{Kind: "ok", Text: "The endpoint was deleted."})
	http.Redirect(w, r.Request, "/dashboard/webhooks", http.StatusSeeOther)
}

func (h *Handler) sendTest(w http.ResponseWriter, r *request) {
	id, ok := h.endpointID(w, r)
	if !ok {
		return
	}
	// The webhook service checks the type and names the field when it is not one.
	eventType := r.FormValue("event_type")
	resp, err := h.opts.Webhooks.SendTestEvent(r.ctx, &casekeeperv1.SendTestEventRequest{Id: id, EventType: eventType})
	if err != nil {
		h.backendError(w, r, err)
		return
	}
	a := viewAttempt(resp.GetAttempt())
	f := &flash{Kind: "ok", Section: "test", Attempt: &a}
	switch {
	case a.OK:
		f.Text = fmt.Sprintf("Test event %s delivered: your endpoint answered %d in %s.", eventType, a.StatusCode, a.Latency)
	case a.StatusCode != 0:
		f.Kind, f.Text = "error", fmt.Sprintf("Test event %s not accepted: your endpoint answered %d in %s.", eventType, a.StatusCode, a.Latency)
	default:
		f.Kind, f.Text = "error", fmt.Sprintf("Test event %s not delivered: %s", eventType, a.Error)
	}
	r.sess.setFlash(f)
	http.Redirect(w, r.Request, "/dashboard/webhooks/"+id+"#test", http.StatusSeeOther)
}

func (h *Handler) endpointID(w http.ResponseWriter, r *request) (string, bool) {
	id := r.PathValue("id")
	if !endpointIDPattern.MatchString(id) {
		h.renderError(w, r.Request, r.sess, errorPage{Status: 404, Title: "Not found", Message: "There is no such webhook endpoint."})
		return "", false
	}
	return id, true
}
