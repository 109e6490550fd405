package dashboard

import (
	"net/http"
	"strings"
	"time"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// banner is a warning at the top of the Webhook Settings and endpoint pages about an endpoint that is failing or
// disabled: what the operational notices say, where the admin looks.
type banner struct {
	EndpointID, URL, Kind, Text string
}

func bannersOf(eps []endpointView) []banner {
	var out []banner
	for _, e := range eps {
		switch {
		case e.Disabled:
			out = append(out, banner{EndpointID: e.ID, URL: e.URL, Kind: "disabled", Text: "is disabled: " + e.DisabledReason})
		case !e.FailingSince.IsZero():
			out = append(out, banner{EndpointID: e.ID, URL: e.URL, Kind: "failing",
				Text: "has failed every attempt since " + formatTime(e.FailingSince) + "; deliveries are retried"})
		}
	}
	return out
}

type noticeView struct {
	Type, EndpointID, EndpointURL, Reason string
	At                                    time.Time
}

// noticesPanel is the Webhook Settings page's operational notices: where they go, and the latest.
type noticesPanel struct {
	URL, Secret string
	Error       string // the URL was refused
	Unavailable bool   // the settings could not be read
	Recent      []noticeView
}

const noticesShown = 10

func (h *Handler) noticesPanel(r *request) noticesPanel {
	var p noticesPanel
	settings, err := h.opts.Webhooks.GetNoticeSettings(r.ctx, &casekeeperv1.GetNoticeSettingsRequest{})
	if err != nil {
		h.log.WarnContext(r.ctx, "notice settings unavailable", "error", err.Error())
		p.Unavailable = true
		return p
	}
	p.URL, p.Secret = settings.GetSettings().GetUrl(), settings.GetSettings().GetSecret()
	list, err := h.opts.Webhooks.ListNotices(r.ctx, &casekeeperv1.ListNoticesRequest{PageSize: noticesShown})
	if err != nil {
		h.log.WarnContext(r.ctx, "notices unavailable", "error", err.Error())
		p.Unavailable = true
		return p
	}
	for _, n := range list.GetNotices() {
		p.Recent = append(p.Recent, noticeView{Type: n.GetType(), EndpointID: n.GetEndpointId(), EndpointURL: n.GetEndpointUrl(),
			Reason: n.GetReason(), At: n.GetAt().AsTime()})
	}
	return p
}

// saveNotices sets where the tenant's operational notices go.
func (h *Handler) saveNotices(w http.ResponseWriter, r *request) {
	url := strings.TrimSpace(r.PostFormValue("notice_url"))
	_, err := h.opts.Webhooks.UpdateNoticeSettings(r.ctx, &casekeeperv1.UpdateNoticeSettingsRequest{Url: url})
	if fe, ok := fieldErrors(err, ""); ok {
		p, ok := h.endpointsPage(w, r)
		if !ok {
			return
		}
		p.Notices.URL, p.Notices.Error = url, "Notice URL "+strings.Join(sortedValues(fe), "; ")
		h.render(w, r.Request, r.sess, http.StatusUnprocessableEntity, "endpoints", "Webhook Settings", p)
		return
	}
	if err != nil {
		h.backendError(w, r, err)
		return
	}
	text := "Saved. Operational notices now go to " + url + ", signed with the notice secret below."
	if url == "" {
		text = "Saved. Operational notices are listed here only."
	}
	r.sess.setFlash(&flash{Kind: "ok", Section: "notices", Text: text})
	http.Redirect(w, r.Request, "/dashboard/webhooks#notices", http.StatusSeeOther)
}
