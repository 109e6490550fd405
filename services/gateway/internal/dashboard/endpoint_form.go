package dashboard

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/casekeeper/core/pkg/events"
	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

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
	PerCase        bool
	Ed25519        bool // the signature scheme asked for, when the endpoint is made
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
		Format: v.Format, JQ: v.JQ, PerCase: v.PerCase, Errors: map[string]string{}, AllEventTypes: events.Types}
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
		MaxConcurrency: strings.TrimSpace(pf.Get("max_concurrency")), PerCase: pf.Get("ordering") == "per_case",
		Errors: map[string]string{}, AllEventTypes: events.Types}
	e := &casekeeperv1.Endpoint{Id: id, Url: f.URL, Description: f.Description, Headers: map[string]string{},
		Ordering: casekeeperv1.EndpointOrdering_ENDPOINT_ORDERING_NONE}
	if f.PerCase {
		e.Ordering = casekeeperv1.EndpointOrdering_ENDPOINT_ORDERING_PER_CASE
	}
	if f.Ed25519 = pf.Get("signature_scheme") == "ed25519"; f.Ed25519 {
		e.SignatureScheme = casekeeperv1.SignatureScheme_SIGNATURE_SCHEME_ED25519
	}
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
		"rate_limit_per_second", "max_concurrency", "ordering"}
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
