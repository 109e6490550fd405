package dashboard

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/casekeeper/core/pkg/events"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// ids are checked before they reach a URL or a backing call; the webhook service checks them again.
var (
	endpointIDPattern = regexp.MustCompile(`^ep_[a-z2-7]{1,64}$`)
	deliveryIDPattern = regexp.MustCompile(`^msg_[a-z2-7]{1,64}$`)
)

const deliveriesPerPage = 20

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
}

type header struct{ Name, Value string }

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
	if v.Format == "" {
		v.Format = "full"
	}
	for k, val := range e.GetHeaders() {
		v.Headers = append(v.Headers, header{k, val})
	}
	slices.SortFunc(v.Headers, func(a, b header) int { return strings.Compare(a.Name, b.Name) })
	return v
}

// endpointForm is the add/edit form: what the user typed, the errors next to each field and the jq preview.
type endpointForm struct {
	ID             string
	URL            string
	Description    string
	EventTypes     map[string]bool
	Format         string
	JQ             string
	Headers        string
	RateLimit      string
	MaxConcurrency string
	Errors         map[string]string
	Preview        *previewView
	AllEventTypes  []string
}

type previewView struct {
	Input  string
	Output string
	Error  string
}

func formFromEndpoint(v endpointView) *endpointForm {
	f := &endpointForm{ID: v.ID, URL: v.URL, Description: v.Description, EventTypes: map[string]bool{},
		Format: v.Format, JQ: v.JQ, Errors: map[string]string{}, AllEventTypes: events.Types}
	for _, t := range v.EventTypes {
		f.EventTypes[t] = true
	}
	var lines []string
	for _, h := range v.Headers {
		lines = append(lines, h.Name+": "+h.Value)
	}
	f.Headers = strings.Join(lines, "\n")
	if v.RateLimit > 0 {
		f.RateLimit = strconv.Itoa(int(v.RateLimit))
	}
	if v.MaxConcurrency > 0 {
		f.MaxConcurrency = strconv.Itoa(int(v.MaxConcurrency))
	}
	return f
}

// readEndpointForm takes the posted form apart; errors in what only the form knows (header lines, numbers) go
// next to their fields like the service's own errors.
func readEndpointForm(r *http.Request, id string) (*endpointForm, *casekeeperv1.Endpoint) {
	pf := r.PostForm
	f := &endpointForm{ID: id, URL: strings.TrimSpace(pf.Get("url")), Description: strings.TrimSpace(pf.Get("description")),
		EventTypes: map[string]bool{}, Format: pf.Get("payload_format"), JQ: pf.Get("jq_transform"),
		Headers: pf.Get("headers"), RateLimit: strings.TrimSpace(pf.Get("rate_limit_per_second")),
		MaxConcurrency: strings.TrimSpace(pf.Get("max_concurrency")), Errors: map[string]string{}, AllEventTypes: events.Types}
	e := &casekeeperv1.Endpoint{Id: id, Url: f.URL, Description: f.Description, Headers: map[string]string{}}
	for _, t := range pf["event_types"] {
		f.EventTypes[t] = true
		e.EventTypes = append(e.EventTypes, t)
	}
	switch f.Format {
	case "thin":
		e.PayloadFormat = casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_THIN
	case "jq":
		e.PayloadFormat = casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_JQ
		e.JqTransform = f.JQ
	case "full", "":
		f.Format = "full"
		e.PayloadFormat = casekeeperv1.PayloadFormat_PAYLOAD_FORMAT_FULL
	default:
		f.Errors["payload_format"] = "choose full, thin or jq"
	}
	for i, line := range strings.Split(strings.ReplaceAll(f.Headers, "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" {
			f.Errors["headers"] = fmt.Sprintf("line %d: write one header per line as Name: value", i+1)
			continue
		}
		if _, dup := e.Headers[name]; dup {
			f.Errors["headers"] = fmt.Sprintf("line %d: %s appears twice", i+1, name)
		}
		e.Headers[name] = value
	}
	number := func(field, raw string) int32 {
		if raw == "" {
			return 0
		}
		n, err := strconv.ParseInt(raw, 10, 32)
		if err != nil {
			f.Errors[field] = "must be a whole number"
		}
		return int32(n)
	}
	e.RateLimitPerSecond = number("rate_limit_per_second", f.RateLimit)
	e.MaxConcurrency = number("max_concurrency", f.MaxConcurrency)
	return f, e
}

type endpointsPage struct {
	Endpoints []endpointView
	NextPage  string
}

func (h *Handler) listEndpoints(w http.ResponseWriter, r *request) {
	resp, err := h.opts.Webhooks.ListEndpoints(r.ctx, &casekeeperv1.ListEndpointsRequest{PageSize: 100, PageToken: r.URL.Query().Get("page")})
	if err != nil {
		h.backendError(w, r, err)
		return
	}
	p := endpointsPage{NextPage: resp.GetNextPageToken()}
	for _, e := range resp.GetEndpoints() {
		p.Endpoints = append(p.Endpoints, viewEndpoint(e))
	}
	h.render(w, r.Request, r.sess, http.StatusOK, "endpoints", "Webhook Settings", p)
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
	"rate_limit_per_second", "max_concurrency"}

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

// previewOrInvalid answers the "Preview" button (the form comes back with the jq output on a sample event,
// nothing saved) and forms with errors found before any call. It reports whether it wrote the response.
func (h *Handler) previewOrInvalid(w http.ResponseWriter, r *request, f *endpointForm) bool {
	title := "Add a webhook endpoint"
	if f.ID != "" {
		title = "Edit webhook endpoint"
	}
	if r.PostForm.Get("action") == "preview" {
		f.Preview = &previewView{}
		resp, err := h.opts.Webhooks.PreviewTransform(r.ctx, &casekeeperv1.PreviewTransformRequest{JqTransform: f.JQ})
		if fe, ok := fieldErrors(err, ""); ok {
			f.Preview.Error = strings.Join(sortedValues(fe), "; ")
		} else if err != nil {
			h.backendError(w, r, err)
			return true
		} else {
			f.Preview.Input, f.Preview.Output = resp.GetInput(), resp.GetOutput()
		}
		h.render(w, r.Request, r.sess, http.StatusOK, "endpoint_form", title, f)
		return true
	}
	if len(f.Errors) > 0 {
		h.render(w, r.Request, r.sess, http.StatusUnprocessableEntity, "endpoint_form", title, f)
		return true
	}
	return false
}

// formFailed puts the service's validation errors next to the fields that caused them and renders the form again.
func (h *Handler) formFailed(w http.ResponseWriter, r *request, f *endpointForm, err error) bool {
	if err == nil {
		return false
	}
	fe, ok := fieldErrors(err, "endpoint.")
	if !ok {
		h.backendError(w, r, err)
		return true
	}
	known := []string{"url", "description", "event_types", "headers", "payload_format", "jq_transform",
		"rate_limit_per_second", "max_concurrency"}
	for field, msg := range fe {
		if !slices.Contains(known, field) {
			field = ""
		}
		if prev := f.Errors[field]; prev != "" {
			msg = prev + "; " + msg
		}
		f.Errors[field] = msg
	}
	title := "Add a webhook endpoint"
	if f.ID != "" {
		title = "Edit webhook endpoint"
	}
	h.render(w, r.Request, r.sess, http.StatusUnprocessableEntity, "endpoint_form", title, f)
	return true
}

// sortedValues lists the messages of fieldErrors in a stable order.
func sortedValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[k])
	}
	return out
}

// deliveryView is one row of the delivery log.
type deliveryView struct {
	ID          string
	EndpointID  string
	EventID     string
	EventType   string
	CaseID      string
	Status      string
	Failed      bool
	Attempts    int32
	StatusCode  int32
	LastError   string
	Latency     string
	Excerpt     string
	Created     time.Time
	Updated     time.Time
	NextAttempt time.Time
	AttemptList []attemptView
}

type attemptView struct {
	Number     int32
	At         time.Time
	StatusCode int32
	OK         bool
	Latency    string
	Excerpt    string
	Error      string
}

type secretView struct {
	Secret  string
	Created time.Time
	Expires time.Time
}

var deliveryStatusNames = map[casekeeperv1.DeliveryStatus]string{
	casekeeperv1.DeliveryStatus_DELIVERY_STATUS_PENDING:   "pending",
	casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED: "succeeded",
	casekeeperv1.DeliveryStatus_DELIVERY_STATUS_RETRYING:  "retrying",
	casekeeperv1.DeliveryStatus_DELIVERY_STATUS_DEAD:      "failed",
}

func viewAttempt(a *casekeeperv1.Attempt) attemptView {
	return attemptView{Number: a.GetNumber(), At: a.GetAt().AsTime(), StatusCode: a.GetStatusCode(),
		OK:      a.GetStatusCode() >= 200 && a.GetStatusCode() < 300 && a.GetError() == "",
		Latency: formatLatency(a.GetLatency().AsDuration()), Excerpt: a.GetResponseExcerpt(), Error: a.GetError()}
}

func viewDelivery(d *casekeeperv1.Delivery) deliveryView {
	v := deliveryView{ID: d.GetId(), EndpointID: d.GetEndpointId(), EventID: d.GetEventId(), EventType: d.GetEventType(),
		CaseID: d.GetCaseId(), Status: deliveryStatusNames[d.GetStatus()], Attempts: d.GetAttemptCount(),
		StatusCode: d.GetLastStatusCode(), LastError: d.GetLastError(), Latency: "—",
		Created: d.GetCreatedAt().AsTime(), Updated: d.GetUpdatedAt().AsTime()}
	if d.GetNextAttemptAt() != nil {
		v.NextAttempt = d.GetNextAttemptAt().AsTime()
	}
	v.Failed = d.GetStatus() == casekeeperv1.DeliveryStatus_DELIVERY_STATUS_DEAD
	if v.Status == "" {
		v.Status = "unknown"
	}
	for _, a := range d.GetAttempts() {
		v.AttemptList = append(v.AttemptList, viewAttempt(a))
	}
	if n := len(v.AttemptList); n > 0 {
		last := v.AttemptList[n-1]
		v.Latency, v.Excerpt = last.Latency, last.Excerpt
	}
	return v
}

type endpointPage struct {
	Endpoint     endpointView
	Deliveries   []deliveryView
	StatusFilter string
	NextPage     string
	ThisPage     string
	RecoverSince string
}

var statusFilters = map[string]casekeeperv1.DeliveryStatus{
	"pending":   casekeeperv1.DeliveryStatus_DELIVERY_STATUS_PENDING,
	"succeeded": casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED,
	"retrying":  casekeeperv1.DeliveryStatus_DELIVERY_STATUS_RETRYING,
	"failed":    casekeeperv1.DeliveryStatus_DELIVERY_STATUS_DEAD,
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
	p := endpointPage{Endpoint: viewEndpoint(ep.GetEndpoint()), ThisPage: q.Get("page"),
		RecoverSince: h.now().Add(-24 * time.Hour).UTC().Format("2006-01-02T15:04")}
	req := &casekeeperv1.ListDeliveriesRequest{EndpointId: id, PageSize: deliveriesPerPage, PageToken: q.Get("page")}
	if st, ok := statusFilters[q.Get("status")]; ok {
		req.Status, p.StatusFilter = st, q.Get("status")
	}
	dl, err := h.opts.Webhooks.ListDeliveries(r.ctx, req)
	if err != nil {
		h.backendError(w, r, err)
		return
	}
	p.NextPage = dl.GetNextPageToken()
	p.Deliveries = h.withAttempts(r, dl.GetDeliveries())
	h.render(w, r.Request, r.sess, http.StatusOK, "endpoint", "Webhook endpoint", p)
}

// withAttempts fetches each listed delivery's attempts (only GetDelivery has them) to show the latency and response
// of its last attempt. A page has at most deliveriesPerPage rows, fetched four at a time; a row whose details fail
// to load is shown without them rather than failing the page.
func (h *Handler) withAttempts(r *request, ds []*casekeeperv1.Delivery) []deliveryView {
	out := make([]deliveryView, len(ds))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, d := range ds {
		out[i] = viewDelivery(d)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			full, err := h.opts.Webhooks.GetDelivery(r.ctx, &casekeeperv1.GetDeliveryRequest{Id: d.GetId()})
			if err == nil {
				out[i] = viewDelivery(full.GetDelivery())
			}
		}()
	}
	wg.Wait()
	return out
}

func (h *Handler) showDelivery(w http.ResponseWriter, r *request) {
	id, ok := h.endpointID(w, r)
	if !ok {
		return
	}
	did := r.PathValue("did")
	if !deliveryIDPattern.MatchString(did) {
		h.renderError(w, r.Request, r.sess, errorPage{Status: 404, Title: "Not found", Message: "There is no such delivery."})
		return
	}
	resp, err := h.opts.Webhooks.GetDelivery(r.ctx, &casekeeperv1.GetDeliveryRequest{Id: did})
	if err != nil {
		h.backendError(w, r, err)
		return
	}
	if resp.GetDelivery().GetEndpointId() != id {
		h.renderError(w, r.Request, r.sess, errorPage{Status: 404, Title: "Not found", Message: "There is no such delivery for this endpoint."})
		return
	}
	h.render(w, r.Request, r.sess, http.StatusOK, "delivery", "Delivery", viewDelivery(resp.GetDelivery()))
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

func (h *Handler) revealSecret(w http.ResponseWriter, r *request) {
	id, ok := h.endpointID(w, r)
	if !ok {
		return
	}
	resp, err := h.opts.Webhooks.RevealSecret(r.ctx, &casekeeperv1.RevealSecretRequest{Id: id})
	if err != nil {
		h.backendError(w, r, err)
		return
	}
	f := &flash{Kind: "ok", Section: "secret", Text: "Signing secrets in use, newest first. Each request is signed with all of them."}
	for _, s := range resp.GetSecrets() {
		sv := secretView{Secret: s.GetSecret(), Created: s.GetCreatedAt().AsTime()}
		if s.GetExpiresAt() != nil {
			sv.Expires = s.GetExpiresAt().AsTime()
		}
		f.Secrets = append(f.Secrets, sv)
	}
	r.sess.setFlash(f)
	http.Redirect(w, r.Request, "/dashboard/webhooks/"+id+"#secret", http.StatusSeeOther)
}

func (h *Handler) rotateSecret(w http.ResponseWriter, r *request) {
	id, ok := h.endpointID(w, r)
	if !ok {
		return
	}
	resp, err := h.opts.Webhooks.RotateSecret(r.ctx, &casekeeperv1.RotateSecretRequest{Id: id})
	if err != nil {
		h.backendError(w, r, err)
		return
	}
	r.sess.setFlash(&flash{Kind: "ok", Section: "secret",
		Text:    "New signing secret made. The previous one keeps signing beside it for 24 hours, so you can update your receiver without losing events.",
		Secrets: []secretView{{Secret: resp.GetSecret().GetSecret(), Created: resp.GetSecret().GetCreatedAt().AsTime()}}})
	http.Redirect(w, r.Request, "/dashboard/webhooks/"+id+"#secret", http.StatusSeeOther)
}

func (h *Handler) sendTest(w http.ResponseWriter, r *request) {
	id, ok := h.endpointID(w, r)
	if !ok {
		return
	}
	resp, err := h.opts.Webhooks.SendTestEvent(r.ctx, &casekeeperv1.SendTestEventRequest{Id: id})
	if err != nil {
		h.backendError(w, r, err)
		return
	}
	a := viewAttempt(resp.GetAttempt())
	f := &flash{Kind: "ok", Section: "test", Attempt: &a}
	switch {
	case a.OK:
		f.Text = fmt.Sprintf("Test event delivered: your endpoint answered %d in %s.", a.StatusCode, a.Latency)
	case a.StatusCode != 0:
		f.Kind, f.Text = "error", fmt.Sprintf("Test event not accepted: your endpoint answered %d in %s.", a.StatusCode, a.Latency)
	default:
		f.Kind, f.Text = "error", "Test event not delivered: "+a.Error
	}
	r.sess.setFlash(f)
	http.Redirect(w, r.Request, "/dashboard/webhooks/"+id+"#test", http.StatusSeeOther)
}

func (h *Handler) resendDelivery(w http.ResponseWriter, r *request) {
	id, ok := h.endpointID(w, r)
	if !ok {
		return
	}
	did := r.PathValue("did")
	if !deliveryIDPattern.MatchString(did) {
		h.renderError(w, r.Request, r.sess, errorPage{Status: 404, Title: "Not found", Message: "There is no such delivery."})
		return
	}
	if _, err := h.opts.Webhooks.ResendDelivery(r.ctx, &casekeeperv1.ResendDeliveryRequest{Id: did}); err != nil {
		h.backendError(w, r, err)
		return
	}
	r.sess.setFlash(&flash{Kind: "ok", Section: "deliveries", Text: "Delivery " + did + " queued again; it keeps its webhook-id."})
	back := "/dashboard/webhooks/" + id + "#deliveries"
	if next := r.PostForm.Get("back"); strings.HasPrefix(next, "/dashboard/webhooks/"+id) {
		back = next
	}
	http.Redirect(w, r.Request, back, http.StatusSeeOther)
}

// recoverFailed resends every failed delivery since the time given. The field is a datetime-local, read as UTC
// (the page says so), because the browser's time zone is not sent with the form.
func (h *Handler) recoverFailed(w http.ResponseWriter, r *request) {
	id, ok := h.endpointID(w, r)
	if !ok {
		return
	}
	since, err := time.Parse("2006-01-02T15:04", r.PostForm.Get("since"))
	if err != nil {
		r.sess.setFlash(&flash{Kind: "error", Section: "recover", Text: "Enter the time to recover from, e.g. 2026-01-31T09:00 (UTC)."})
		http.Redirect(w, r.Request, "/dashboard/webhooks/"+id+"#recover", http.StatusSeeOther)
		return
	}
	resp, err := h.opts.Webhooks.RecoverFailed(r.ctx, &casekeeperv1.RecoverFailedRequest{EndpointId: id, Since: timestamppb.New(since)})
	if fe, ok := fieldErrors(err, ""); ok {
		r.sess.setFlash(&flash{Kind: "error", Section: "recover", Text: "Since: " + strings.Join(sortedValues(fe), "; ")})
		http.Redirect(w, r.Request, "/dashboard/webhooks/"+id+"#recover", http.StatusSeeOther)
		return
	}
	if err != nil {
		h.backendError(w, r, err)
		return
	}
	r.sess.setFlash(&flash{Kind: "ok", Section: "recover",
		Text: fmt.Sprintf("%d failed deliveries since %s queued again.", resp.GetRecovered(), formatTime(since))})
	http.Redirect(w, r.Request, "/dashboard/webhooks/"+id+"#recover", http.StatusSeeOther)
}

func (h *Handler) endpointID(w http.ResponseWriter, r *request) (string, bool) {
	id := r.PathValue("id")
	if !endpointIDPattern.MatchString(id) {
		h.renderError(w, r.Request, r.sess, errorPage{Status: 404, Title: "Not found", Message: "There is no such webhook endpoint."})
		return "", false
	}
	return id, true
}

// pageLink keeps the status filter when paging through the delivery log.
func pageLink(base, status, page string) string {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	if page != "" {
		q.Set("page", page)
	}
	if len(q) == 0 {
		return base
	}
	return base + "?" + q.Encode()
}
