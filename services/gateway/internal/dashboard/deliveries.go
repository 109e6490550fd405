package dashboard

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// deliveryIDPattern is checked before an id reaches a URL or a backing call; the webhook service checks it again.
var deliveryIDPattern = regexp.MustCompile(`^msg_[a-z2-7]{1,64}$`)

const deliveriesPerPage = 20

// deliveryView is one row of the delivery log.
type deliveryView struct {
	ID          string
	EndpointID  string
	EventID     string
	EventType   string
	CaseID      string
	Test        bool // a test event to the sample case: no case page, no resend
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
	// The request as sent (custom header values arrive masked from the webhook service).
	RequestHeaders []*casekeeperv1.RequestHeader
	RequestBody    string
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
		Latency: formatLatency(a.GetLatency().AsDuration()), Excerpt: a.GetResponseExcerpt(), Error: a.GetError(),
		RequestHeaders: a.GetRequestHeaders(), RequestBody: a.GetRequestBody()}
}

func viewDelivery(d *casekeeperv1.Delivery) deliveryView {
	v := deliveryView{ID: d.GetId(), EndpointID: d.GetEndpointId(), EventID: d.GetEventId(), EventType: d.GetEventType(),
		CaseID: d.GetCaseId(), Test: d.GetTest(), Status: deliveryStatusNames[d.GetStatus()], Attempts: d.GetAttemptCount(),
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
	if d.GetLastAttempt() != nil {
		last := viewAttempt(d.GetLastAttempt())
		v.Latency, v.Excerpt = last.Latency, last.Excerpt
	}
	return v
}

var statusFilters = map[string]casekeeperv1.DeliveryStatus{
	"pending":   casekeeperv1.DeliveryStatus_DELIVERY_STATUS_PENDING,
	"succeeded": casekeeperv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED,
	"retrying":  casekeeperv1.DeliveryStatus_DELIVERY_STATUS_RETRYING,
	"failed":    casekeeperv1.DeliveryStatus_DELIVERY_STATUS_DEAD,
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
