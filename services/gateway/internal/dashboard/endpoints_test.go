package dashboard

import (
	"strings"
	"testing"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
)

// Header values never reach a page, neither the endpoint's view nor its edit form, whatever the service returns.
func TestHeaderValuesAreMasked(t *testing.T) {
	v := viewEndpoint(&casekeeperv1.Endpoint{Id: "ep_1", Url: "https://x.example",
		Headers: map[string]string{"Authorization": "Bearer receiver-credential", "X-Env": "prod"}})
	for _, h := range v.Headers {
		if h.Value != headerValueMask {
			t.Errorf("header %s shown as %q", h.Name, h.Value)
		}
	}
	if f := formFromEndpoint(v); strings.Contains(f.Headers, "receiver-credential") || !strings.Contains(f.Headers, "Authorization: "+headerValueMask) {
		t.Errorf("edit form headers %q", f.Headers)
	}
}
