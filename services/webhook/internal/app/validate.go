package app

import (
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/casekeeper/core/pkg/events"
	"github.com/casekeeper/core/pkg/validation"
	"github.com/casekeeper/core/proto/webhookbody"
	"github.com/casekeeper/core/services/webhook/internal/delivery"
	"github.com/casekeeper/core/services/webhook/internal/httpsender"
	"github.com/casekeeper/core/services/webhook/internal/payload"
)

// Limits of an endpoint's settings.
const (
	maxURLLength     = 2048
	maxDescription   = 1000
	maxHeaders       = 20
	maxHeaderValue   = 1024
	maxRateLimit     = 10000
	maxJQLength      = 16 << 10
	maxDisableReason = 500
)

var headerName = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")

// reservedHeaders are set by the service; an endpoint may not override them.
var reservedHeaders = []string{"content-type", "content-length", "host", "user-agent", "connection",
	"transfer-encoding", "te", "upgrade", "trailer", "expect", "keep-alive", "proxy-authorization"}

// validateEndpoint checks every writable field; prefix is the path of the endpoint in the request ("endpoint.").
// The URL check here refuses what is visibly internal; the dialer checks again at every connection, after DNS.
func validateEndpoint(e delivery.Endpoint, prefix string, allowLoopback bool) validation.Errors {
	var errs validation.Errors
	validateURL(&errs, prefix+"url", e.URL, allowLoopback)
	if e.PayloadVersion != "" && !webhookbody.KnownVersion(e.PayloadVersion) {
		errs.Add(prefix+"payload_version", "%q is not a payload version (one of %s)", e.PayloadVersion, strings.Join(webhookbody.Versions, ", "))
	}
	if utf8.RuneCountInString(e.Description) > maxDescription {
		errs.Add(prefix+"description", "must be at most %d characters", maxDescription)
	} else {
		errs.Text(prefix+"description", e.Description, validation.TextRule{})
	}
	seen := map[string]bool{}
	for i, t := range e.EventTypes {
		switch {
		case !slices.Contains(events.Types, t):
			errs.Add(prefix+"event_types", "entry %d %q is not an event type (one of %s)", i, t, strings.Join(events.Types, ", "))
		case seen[t]:
			errs.Add(prefix+"event_types", "entry %d %q is repeated", i, t)
		}
		seen[t] = true
	}
	if len(e.Headers) > maxHeaders {
		errs.Add(prefix+"headers", "at most %d headers", maxHeaders)
	}
	for k, v := range e.Headers {
		lk := strings.ToLower(k)
		switch {
		case !headerName.MatchString(k):
			errs.Add(prefix+"headers", "%q is not a valid header name", k)
		case slices.Contains(reservedHeaders, lk) || strings.HasPrefix(lk, "webhook-"):
			errs.Add(prefix+"headers", "%q is set by the service", k)
		case len(v) > maxHeaderValue:
			errs.Add(prefix+"headers", "the value of %q must be at most %d bytes", k, maxHeaderValue)
		case strings.TrimSpace(v) != v:
			errs.Add(prefix+"headers", "the value of %q must not begin or end with white space", k)
		default:
			if msg := validation.TextProblem(v, validation.TextRule{Tab: true}); msg != "" {
				errs.Add(prefix+"headers", "the value of %q %s", k, msg)
			}
		}
	}
	switch e.Format {
	case delivery.FormatFull, delivery.FormatThin:
		if e.JQ != "" {
			errs.Add(prefix+"jq_transform", "is only used with payload_format PAYLOAD_FORMAT_JQ")
		}
	case delivery.FormatJQ:
		switch {
		case strings.TrimSpace(e.JQ) == "":
			errs.Add(prefix+"jq_transform", "is required with payload_format PAYLOAD_FORMAT_JQ")
		case len(e.JQ) > maxJQLength:
			errs.Add(prefix+"jq_transform", "must be at most %d bytes", maxJQLength)
		case validation.TextProblem(e.JQ, validation.TextRule{Multiline: true}) != "":
			errs.Text(prefix+"jq_transform", e.JQ, validation.TextRule{Multiline: true})
		default:
			if _, err := payload.Compile(e.JQ); err != nil {
				errs.Add(prefix+"jq_transform", "%s", err.Error())
			}
		}
	default:
		errs.Add(prefix+"payload_format", "must be PAYLOAD_FORMAT_FULL, PAYLOAD_FORMAT_THIN or PAYLOAD_FORMAT_JQ")
	}
	if e.RateLimit < 0 || e.RateLimit > maxRateLimit {
		errs.Add(prefix+"rate_limit_per_second", "must be between 0 (no limit) and %d", maxRateLimit)
	}
	if e.MaxConcurrency < 0 || e.MaxConcurrency > delivery.MaxConcurrency {
		errs.Add(prefix+"max_concurrency", "must be between 0 (default %d) and %d", delivery.DefaultConcurrency, delivery.MaxConcurrency)
	}
	if len(e.DisabledReason) > maxDisableReason {
		errs.Add(prefix+"disabled_reason", "must be at most %d bytes", maxDisableReason)
	} else {
		errs.Text(prefix+"disabled_reason", e.DisabledReason, validation.TextRule{})
	}
	return errs
}

func validateURL(errs *validation.Errors, field, raw string, allowLoopback bool) {
	if raw == "" {
		errs.Add(field, "is required")
		return
	}
	if len(raw) > maxURLLength {
		errs.Add(field, "must be at most %d bytes", maxURLLength)
		return
	}
	if msg := validation.TextProblem(raw, validation.TextRule{}); msg != "" {
		errs.Add(field, "%s", msg)
		return
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		errs.Add(field, "must be an absolute URL")
		return
	}
	if u.User != nil {
		errs.Add(field, "must not hold credentials; use headers instead")
		return
	}
	if u.Fragment != "" {
		errs.Add(field, "must not have a fragment")
		return
	}
	host := strings.ToLower(u.Hostname())
	if addr, numeric, ok := numericHost(host); numeric && !strings.Contains(host, ":") {
		// A resolver reads these spellings as an address; only the canonical one is accepted, so that what is
		// stored is what is checked, here and in every log.
		switch {
		case !ok:
			errs.Add(field, "host %q is neither a name nor an IPv4 address", host)
			return
		case addr.String() != host:
			errs.Add(field, "host %q is the IPv4 address %s written another way; write it as %s", host, addr, addr)
			return
		}
	}
	if !asciiHost(host) {
		errs.Add(field, "host %q must be ASCII; write an internationalised name in its xn-- form", host)
		return
	}
	// A resolver ignores one trailing dot: localhost. is localhost.
	name := strings.TrimSuffix(host, ".")
	loopback := name == "localhost" || strings.HasSuffix(name, ".localhost")
	if ip, err := netip.ParseAddr(host); err == nil {
		loopback = ip.Unmap().IsLoopback()
		if err := httpsender.CheckAddr(ip, allowLoopback); err != nil {
			errs.Add(field, "%s", err.Error())
			return
		}
	} else if loopback && !allowLoopback {
		errs.Add(field, "%s: %s is a loopback name", httpsender.ErrForbiddenAddress.Error(), host)
		return
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowLoopback && loopback:
	case u.Scheme == "http" && allowLoopback:
		errs.Add(field, "must use https (http is allowed only to loopback addresses)")
	default:
		errs.Add(field, "must use https")
	}
}

func asciiHost(host string) bool {
	for i := range len(host) {
		if host[i] >= 0x80 {
			return false
		}
	}
	return true
}
