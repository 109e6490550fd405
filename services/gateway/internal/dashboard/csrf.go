package dashboard

import (
	"errors"
	"net/http"
)

const csrfField = "csrf_token"

// maxFormBytes bounds a dashboard form; the largest field, a jq program, is limited to 16 KiB by the webhook service.
const maxFormBytes = 64 << 10

// checkPost refuses a form that did not come from a dashboard page of this session. Three checks, any one of which
// stops a cross-site form: the browser's own Sec-Fetch-Site, the Origin header, and the per-session token in a
// hidden field (compared in constant time) — the last one also covers old browsers that send neither header.
func (h *Handler) checkPost(r *http.Request, s *session) error {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin":
	default:
		return errors.New("cross-site request (Sec-Fetch-Site)")
	}
	if o := r.Header.Get("Origin"); o != "" && o != h.origin {
		return errors.New("foreign origin")
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return errors.New("unreadable form")
	}
	if !equalSecret(r.PostForm.Get(csrfField), s.csrf) {
		return errors.New("missing or wrong CSRF token")
	}
	return nil
}
