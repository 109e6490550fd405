package dashboard

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/casekeeper/core/services/gateway/internal/credentials"
)

// fakeCredentials records which tenant each call was for.
type fakeCredentials struct {
	tenants []string
	revoked []string
}

func (f *fakeCredentials) List(_ context.Context, tenant string) ([]credentials.Credential, error) {
	f.tenants = append(f.tenants, tenant)
	return []credentials.Credential{{ClientID: tenant + "-api-abcdefghij", Name: "sync", Created: time.Now()}}, nil
}

func (f *fakeCredentials) Create(_ context.Context, tenant, name string) (credentials.Credential, string, error) {
	f.tenants = append(f.tenants, tenant)
	if err := credentials.CheckName(name); err != nil {
		return credentials.Credential{}, "", err
	}
	return credentials.Credential{ClientID: tenant + "-api-zzzzzzzzzz", Name: name}, "s3cret-once", nil
}

func (f *fakeCredentials) Rotate(context.Context, string, string) (string, error) {
	return "", credentials.ErrNotFound
}

func (f *fakeCredentials) Revoke(_ context.Context, tenant, id string) error {
	f.tenants, f.revoked = append(f.tenants, tenant), append(f.revoked, id)
	return nil
}

func TestCredentialsPage(t *testing.T) {
	f := newFixture(t, false)
	f.signIn(t)
	// Not set up by the operator: the page says so, and nothing can be made.
	if page := body(t, f.get(t, "/dashboard/credentials")); !strings.Contains(page, `id="credentials-off"`) {
		t.Fatal("without a credentials manager the page does not say it is not set up")
	}
	fake := &fakeCredentials{}
	f.h.opts.Credentials = fake
	page := body(t, f.get(t, "/dashboard/credentials"))
	token := csrfFrom(t, page)
	post := func(path string, form url.Values) (*http.Response, string) {
		form.Set(csrfField, token)
		resp, err := f.client.PostForm(f.srv.URL+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp, body(t, resp)
	}
	resp, page := post("/dashboard/credentials", url.Values{"name": {"CRM sync"}})
	if resp.StatusCode != http.StatusCreated || !strings.Contains(page, "s3cret-once") || !strings.Contains(page, "/protocol/openid-connect/token") {
		t.Fatalf("create: %d, want 201 with the secret and the example", resp.StatusCode)
	}
	resp, page = post("/dashboard/credentials", url.Values{"name": {"bad\u202ename"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="name-error"`) {
		t.Fatalf("a bad name: %d, want 422 with the error next to the field", resp.StatusCode)
	}
	// An id that is no credential's is refused before any call; a credential the tenant does not hold is not found.
	if resp, _ = post("/dashboard/credentials/casekeeper-gateway/revoke", url.Values{}); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("revoking casekeeper-gateway: %d, want 404", resp.StatusCode)
	}
	if resp, _ = post("/dashboard/credentials/globex-api-abcdefghij/rotate", url.Values{}); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("rotating a credential the tenant does not hold: %d, want 404", resp.StatusCode)
	}
	if len(fake.revoked) != 0 {
		t.Fatalf("revoked %v", fake.revoked)
	}
	for _, tenant := range fake.tenants {
		if tenant != "acme" {
			t.Fatalf("a call for tenant %q, want only the signed-in user's", tenant)
		}
	}
}
