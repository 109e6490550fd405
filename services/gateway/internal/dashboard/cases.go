package dashboard

import (
	"cmp"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/casekeeper/core/pkg/events"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

const (
	casesPerPage = 25
	// feedPages bounds the scan of the tenant's change feed for one case's timeline (500 events a page). The feed
	// has no per-case filter; past this many events the page says the timeline is incomplete.
	feedPages = 20
)

var caseIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// enumName turns CASE_STATUS_IN_REVIEW into "in review".
func enumName(s, prefix string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(s, prefix)), "_", " ")
}

func statusName(s casekeeperv1.CaseStatus) string { return enumName(s.String(), "CASE_STATUS_") }

type caseRow struct {
	ID          string
	ExternalRef string
	Applicant   string
	Status      string
	StatusClass string
	Level       string
	Version     int64
	Updated     time.Time
	Created     time.Time
}

func viewCaseRow(c *casekeeperv1.Case) caseRow {
	return caseRow{ID: c.GetId(), ExternalRef: c.GetExternalRef(), Applicant: c.GetApplicant().GetFullName(), Status: statusName(c.GetStatus()),
		StatusClass: strings.ReplaceAll(statusName(c.GetStatus()), " ", "-"),
		Level:       enumName(c.GetLevel().String(), "VERIFICATION_LEVEL_"), Version: c.GetVersion(),
		Updated: c.GetUpdatedAt().AsTime(), Created: c.GetCreatedAt().AsTime()}
}

type statusOption struct {
	Value    string
	Label    string
	Selected bool
}

type casesPage struct {
	Cases        []caseRow
	Statuses     []statusOption
	Status       string
	UpdatedAfter string
	Reference    string
	Applicant    string
	Error        string
	NextPage     string
	NextLink     string
}

// listCases lists the tenant's cases newest first, filtered by status, reference, applicant name and "updated
// after" (ISO date and time, UTC).
func (h *Handler) listCases(w http.ResponseWriter, r *request) {
	q := r.URL.Query()
	p := casesPage{Status: q.Get("status"), UpdatedAfter: q.Get("updated_after"), Reference: strings.TrimSpace(q.Get("ref")),
		Applicant: strings.TrimSpace(q.Get("name"))}
	// The reference is matched exactly and the name as a part, ignoring case, as the case service's filters do
	// (and check them).
	req := &casekeeperv1.ListCasesRequest{PageSize: casesPerPage, PageToken: q.Get("page"), ExternalRef: p.Reference,
		ApplicantName: p.Applicant, NewestFirst: true}
	for v := casekeeperv1.CaseStatus_CASE_STATUS_DRAFT; v <= casekeeperv1.CaseStatus_CASE_STATUS_REDACTED; v++ {
		value := strings.ToLower(strings.TrimPrefix(v.String(), "CASE_STATUS_"))
		p.Statuses = append(p.Statuses, statusOption{Value: value, Label: statusName(v), Selected: value == p.Status})
		if value == p.Status {
			req.Statuses = []casekeeperv1.CaseStatus{v}
		}
	}
	if p.UpdatedAfter != "" {
		t, err := time.Parse("2006-01-02T15:04", p.UpdatedAfter)
		if err != nil {
			p.Error = "Updated after: enter a date and time such as 2026-01-31T09:00 (UTC)."
			h.render(w, r.Request, r.sess, http.StatusUnprocessableEntity, "cases", "Cases", p)
			return
		}
		req.UpdatedAfter = timestamppb.New(t)
	}
	resp, err := h.opts.Cases.ListCases(r.ctx, req)
	if err != nil {
		if fe, ok := fieldErrors(err, ""); ok {
			p.Error = strings.Join(sortedValues(fe), "; ")
			h.render(w, r.Request, r.sess, http.StatusUnprocessableEntity, "cases", "Cases", p)
			return
		}
		h.backendError(w, r, err)
		return
	}
	for _, c := range resp.GetCases() {
		p.Cases = append(p.Cases, viewCaseRow(c))
	}
	if p.NextPage = resp.GetNextPageToken(); p.NextPage != "" {
		nq := q
		nq.Set("page", p.NextPage)
		p.NextLink = "/dashboard/cases?" + nq.Encode()
	}
	h.render(w, r.Request, r.sess, http.StatusOK, "cases", "Cases", p)
}

type timelineEntry struct {
	At      time.Time
	Type    string
	Version int64
	Status  string
	Detail  string
}

// documentView and checkView are a case's documents and checks as its page lists them.
type documentView struct {
	Type, Country, Number, Decision string
	Added                           time.Time
}

type checkView struct {
	Type, Result, Provider, Reference string
	Completed                         time.Time
}

type casePage struct {
	Case       caseRow
	Applicant  string
	Assignee   string
	Labels     []string
	Reason     string
	Documents  []documentView
	Checks     []checkView
	Risk       string
	Timeline   []timelineEntry
	FromFeed   bool
	Incomplete bool
}

func (h *Handler) showCase(w http.ResponseWriter, r *request) {
	id := r.PathValue("id")
	if !caseIDPattern.MatchString(id) {
		h.renderError(w, r.Request, r.sess, errorPage{Status: 404, Title: "Not found", Message: "There is no such case."})
		return
	}
	resp, err := h.opts.Cases.GetCase(r.ctx, &casekeeperv1.GetCaseRequest{Id: id})
	if err != nil {
		h.backendError(w, r, err)
		return
	}
	c := resp.GetCase()
	p := casePage{Case: viewCaseRow(c), Applicant: c.GetApplicant().GetFullName(), Assignee: c.GetAssignee(),
		Labels: c.GetLabels(), Reason: c.GetStatusReason()}
	for _, d := range c.GetDocuments() {
		p.Documents = append(p.Documents, documentView{Type: enumName(d.GetType().String(), "DOCUMENT_TYPE_"),
			Country: d.GetIssuingCountry(), Number: d.GetMaskedNumber(), Decision: enumName(d.GetDecision().String(), "DOCUMENT_DECISION_"),
			Added: d.GetAddedAt().AsTime()})
	}
	for _, ch := range c.GetChecks() {
		p.Checks = append(p.Checks, checkView{Type: enumName(ch.GetType().String(), "CHECK_TYPE_"),
			Result: enumName(ch.GetResult().String(), "CHECK_RESULT_"), Provider: ch.GetProvider(), Reference: ch.GetReference(),
			Completed: ch.GetCompletedAt().AsTime()})
	}
	if c.GetRisk().GetLevel() != casekeeperv1.RiskLevel_RISK_LEVEL_UNSPECIFIED {
		p.Risk = enumName(c.GetRisk().GetLevel().String(), "RISK_LEVEL_")
	}
	if h.opts.Events != nil {
		p.Timeline, p.Incomplete, err = h.caseTimeline(r, c)
		if err != nil {
			h.log.WarnContext(r.Context(), "dashboard case timeline from the feed failed", "error", err)
		} else {
			p.FromFeed = true
		}
	}
	if !p.FromFeed {
		p.Timeline = derivedTimeline(c)
	}
	h.render(w, r.Request, r.sess, http.StatusOK, "case", "Case "+c.GetId(), p)
}

// caseTimeline reads the case's events from the change feed, from the oldest retained one. It stops at the event of
// the case's current version — nothing after it can be about this case — or after feedPages pages.
func (h *Handler) caseTimeline(r *request, c *casekeeperv1.Case) ([]timelineEntry, bool, error) {
	var out []timelineEntry
	after := ""
	for range feedPages {
		resp, err := h.opts.Events.ListCaseEvents(r.ctx, &casekeeperv1.ListCaseEventsRequest{After: after, PageSize: 500, CaseId: c.GetId()})
		if err != nil {
			return nil, false, err
		}
		for _, e := range resp.GetEvents() {
			if e.GetCaseId() != c.GetId() {
				continue
			}
			out = append(out, viewEvent(e))
			if e.GetCaseVersion() >= c.GetVersion() {
				return out, false, nil
			}
		}
		if len(resp.GetEvents()) == 0 || resp.GetNextCursor() == "" || resp.GetNextCursor() == after {
			// The feed ends before the current version's event: it is still on its way, or older events were
			// past the feed's retention.
			return out, len(out) == 0 || out[0].Version > 1, nil
		}
		after = resp.GetNextCursor()
	}
	return out, true, nil
}

func viewEvent(e *casekeeperv1.CaseEvent) timelineEntry {
	t := timelineEntry{At: e.GetOccurredAt().AsTime(), Type: e.GetType(), Version: e.GetCaseVersion(),
		Status: statusName(e.GetData().GetStatus())}
	d := e.GetData()
	switch e.GetType() {
	case events.TypeStatusChanged:
		t.Detail = "status is now " + t.Status
		if d.GetStatusReason() != "" {
			t.Detail += " (" + d.GetStatusReason() + ")"
		}
	case events.TypeDocumentAdded:
		if docs := d.GetDocuments(); len(docs) > 0 {
			t.Detail = enumName(docs[len(docs)-1].GetType().String(), "DOCUMENT_TYPE_")
		}
	case events.TypeCheckRecorded:
		if checks := d.GetChecks(); len(checks) > 0 {
			last := checks[len(checks)-1]
			t.Detail = enumName(last.GetType().String(), "CHECK_TYPE_") + ": " + enumName(last.GetResult().String(), "CHECK_RESULT_")
		}
	case events.TypeRiskSet:
		t.Detail = "risk " + enumName(d.GetRisk().GetLevel().String(), "RISK_LEVEL_")
	case events.TypeReviewCompleted:
		t.Detail = enumName(d.GetReview().GetAnswer().String(), "REVIEW_ANSWER_")
	}
	return t
}

// derivedTimeline is the case's history as far as its own timestamps tell it, for when no change feed is wired.
func derivedTimeline(c *casekeeperv1.Case) []timelineEntry {
	var out []timelineEntry
	add := func(ts *timestamppb.Timestamp, what, detail string) {
		if ts != nil {
			out = append(out, timelineEntry{At: ts.AsTime(), Type: what, Detail: detail})
		}
	}
	add(c.GetCreatedAt(), events.TypeCreated, "")
	for _, d := range c.GetDocuments() {
		add(d.GetAddedAt(), events.TypeDocumentAdded, enumName(d.GetType().String(), "DOCUMENT_TYPE_"))
	}
	for _, ch := range c.GetChecks() {
		add(ch.GetCompletedAt(), events.TypeCheckRecorded, enumName(ch.GetType().String(), "CHECK_TYPE_")+": "+enumName(ch.GetResult().String(), "CHECK_RESULT_"))
	}
	add(c.GetSubmittedAt(), "submitted", "")
	add(c.GetReviewedAt(), events.TypeReviewCompleted, "")
	add(c.GetRedactedAt(), events.TypeRedacted, "")
	add(c.GetUpdatedAt(), "last change", "status "+statusName(c.GetStatus()))
	slices.SortStableFunc(out, func(a, b timelineEntry) int { return cmp.Compare(a.At.UnixNano(), b.At.UnixNano()) })
	return out
}
