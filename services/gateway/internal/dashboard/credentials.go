package dashboard

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"

	"github.com/casekeeper/core/pkg/validation"
	"github.com/casekeeper/core/services/gateway/internal/credentials"
)

// Credentials manages the tenant's API credentials (credentials.Keycloak).
type Credentials interface {
	List(ctx context.Context, tenant string) ([]credentials.Credential, error)
	Create(ctx context.Context, tenant, name string) (credentials.Credential, string, error)
	Rotate(ctx context.Context, tenant, clientID string) (string, error)
	Revoke(ctx context.Context, tenant, clientID string) error
}

var credentialIDPattern = regexp.MustCompile(`^[a-z0-9-]{1,64}-api-[a-z2-7]{10}$`)

type credentialsPage struct {
	Configured  bool
	Credentials []credentials.Credential
	Max         int
	Name        string
	NameError   string
	// Issued is a secret just made, shown this once, with the commands that use it.
	Issued *issuedCredential
	// TokenURL and APIURL are what the copy-paste example calls.
	TokenURL, APIURL string
}

type issuedCredential struct {
	ClientID, Secret, Action string
}

// listCredentials is the API credentials page: the tenant's clients for interval fetch, a form to make one, and
// for each a rotate and a revoke button.
func (h *Handler) listCredentials(w http.ResponseWriter, r *request) {
	h.renderCredentials(w, r, http.StatusOK, credentialsPage{}, nil)
}

func (h *Handler) renderCredentials(w http.ResponseWriter, r *request, code int, p credentialsPage, issued *issuedCredential) {
	p.Configured, p.Max, p.Issued = h.opts.Credentials != nil, credentials.MaxPerTenant, issued
	p.TokenURL = strings.TrimRight(h.oidc.browserBase, "/") + "/protocol/openid-connect/token"
	p.APIURL = h.origin
	if p.Configured {
		list, err := h.opts.Credentials.List(r.ctx, r.sess.principal.Tenant)
		if err != nil {
			h.credentialsError(w, r, err)
			return
		}
		p.Credentials = list
	}
	// A page with a secret on it is never cached (no-store is set for every dashboard page) and is the answer to
	// the POST itself, so that the secret is never stored in the session to show on a later page.
	h.render(w, r.Request, r.sess, code, "credentials", "API credentials", p)
}

func (h *Handler) createCredential(w http.ResponseWriter, r *request) {
	if h.opts.Credentials == nil {
		h.renderCredentials(w, r, http.StatusConflict, credentialsPage{}, nil)
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	c, secret, err := h.opts.Credentials.Create(r.ctx, r.sess.principal.Tenant, name)
	if fe, ok := validation.As(err); ok {
		h.renderCredentials(w, r, http.StatusUnprocessableEntity, credentialsPage{Name: name, NameError: fieldMessage(fe, "name")}, nil)
		return
	}
	if errors.Is(err, credentials.ErrLimit) {
		h.renderCredentials(w, r, http.StatusUnprocessableEntity, credentialsPage{Name: name, NameError: err.Error()}, nil)
		return
	}
	if err != nil {
		h.credentialsError(w, r, err)
		return
	}
	h.log.InfoContext(r.ctx, "API credential created", "tenant", r.sess.principal.Tenant, "client_id", c.ClientID, "by", r.sess.user)
	h.renderCredentials(w, r, http.StatusCreated, credentialsPage{}, &issuedCredential{ClientID: c.ClientID, Secret: secret, Action: "created"})
}

func (h *Handler) rotateCredential(w http.ResponseWriter, r *request) {
	id, ok := h.credentialID(w, r)
	if !ok {
		return
	}
	secret, err := h.opts.Credentials.Rotate(r.ctx, r.sess.principal.Tenant, id)
	if err != nil {
		h.credentialsError(w, r, err)
		return
	}
	h.log.InfoContext(r.ctx, "API credential rotated", "tenant", r.sess.principal.Tenant, "client_id", id, "by", r.sess.user)
	h.renderCredentials(w, r, http.StatusOK, credentialsPage{}, &issuedCredential{ClientID: id, Secret: secret, Action: "rotated"})
}

func (h *Handler) revokeCredential(w http.ResponseWriter, r *request) {
	id, ok := h.credentialID(w, r)
	if !ok {
		return
	}
	if err := h.opts.Credentials.Revoke(r.ctx, r.sess.principal.Tenant, id); err != nil {
		h.credentialsError(w, r, err)
		return
	}
	h.log.InfoContext(r.ctx, "API credential revoked", "tenant", r.sess.principal.Tenant, "client_id", id, "by", r.sess.user)
	r.sess.setFlash(&flash{Kind: "ok", Text: "Revoked " + id + ": it gets no new token. A token it already holds works until it expires (at most the realm's access-token lifespan)."})
	http.Redirect(w, r.Request, "/dashboard/credentials", http.StatusSeeOther)
}

func (h *Handler) credentialID(w http.ResponseWriter, r *request) (string, bool) {
	id := r.PathValue("id")
	if h.opts.Credentials == nil || !credentialIDPattern.MatchString(id) {
		h.renderError(w, r.Request, r.sess, errorPage{Status: http.StatusNotFound, Title: "Not found", Message: "There is no such API credential."})
		return "", false
	}
	return id, true
}

func (h *Handler) credentialsError(w http.ResponseWriter, r *request, err error) {
	if errors.Is(err, credentials.ErrNotFound) {
		h.renderError(w, r.Request, r.sess, errorPage{Status: http.StatusNotFound, Title: "Not found", Message: "There is no such API credential of your organisation."})
		return
	}
	h.log.ErrorContext(r.ctx, "API credentials: Keycloak call failed", "error", err)
	if errors.Is(err, credentials.ErrNoAccess) {
		h.renderError(w, r.Request, r.sess, errorPage{Status: http.StatusServiceUnavailable, Title: "API credentials are not available",
			Message: "The gateway cannot sign in to Keycloak with its credentials account (GATEWAY_CREDENTIALS_CLIENT_ID and _SECRET). " +
				"Ask the operator to add it to the realm: it is in deploy/keycloak/casekeeper-realm.json (a realm imported before it existed lacks it)."})
		return
	}
	h.renderError(w, r.Request, r.sess, errorPage{Status: http.StatusBadGateway, Title: "Keycloak did not answer",
		Message: "The API credentials could not be read or changed just now; try again in a moment."})
}

func fieldMessage(fe validation.Errors, field string) string {
	var msgs []string
	for _, e := range fe {
		if e.Field == field {
			msgs = append(msgs, e.Message)
		}
	}
	return "Name " + strings.Join(msgs, "; ")
}
