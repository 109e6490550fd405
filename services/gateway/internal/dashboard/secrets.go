package dashboard

import (
	"net/http"
	"time"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

type secretView struct {
	Secret  string
	Created time.Time
	Expires time.Time
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
	req := &casekeeperv1.RotateSecretRequest{Id: id}
	switch r.PostFormValue("scheme") {
	case "ed25519":
		req.SignatureScheme = casekeeperv1.SignatureScheme_SIGNATURE_SCHEME_ED25519
	case "hmac":
		req.SignatureScheme = casekeeperv1.SignatureScheme_SIGNATURE_SCHEME_HMAC_SHA256
	}
	resp, err := h.opts.Webhooks.RotateSecret(r.ctx, req)
	if err != nil {
		h.backendError(w, r, err)
		return
	}
	r.sess.setFlash(&flash{Kind: "ok", Section: "secret",
		Text:    "New signing secret made. The previous one keeps signing beside it for 24 hours, so you can update your receiver without losing events.",
		Secrets: []secretView{{Secret: resp.GetSecret().GetSecret(), Created: resp.GetSecret().GetCreatedAt().AsTime()}}})
	http.Redirect(w, r.Request, "/dashboard/webhooks/"+id+"#secret", http.StatusSeeOther)
}
