package webhooks_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/casekeeper/core/pkg/webhooks"
)

// A receiver: the middleware verifies and decodes, the handler deduplicates, drops stale versions and stores.
func ExampleMiddleware() {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // from the endpoint; keep yours in a secret store
	v, err := webhooks.NewVerifier([]string{secret})
	if err != nil {
		panic(err)
	}
	seen := map[string]bool{}      // webhook-ids handled: a unique index in your database
	versions := map[string]int64{} // case id → version applied: a column beside the case
	h := webhooks.Middleware(v, webhooks.FormatFull, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e := webhooks.FromContext(r.Context())
		if seen[e.ID] {
			w.WriteHeader(http.StatusNoContent) // a retry: answer 2xx or it comes again
			return
		}
		seen[e.ID] = true
		if id, version, _ := e.CaseVersion(); version > versions[id] {
			versions[id] = version
			// e.Data is the case as JSON; protojson.Unmarshal turns it into a *casekeeperv1.Case.
			fmt.Println(e.Type, id, version)
		}
		w.WriteHeader(http.StatusNoContent)
	}))

	body := `{"type":"case.status_changed","timestamp":"2027-01-15T08:00:00Z","data":{"id":"cas_1","tenant":"acme",` +
		`"status":"CASE_STATUS_SUBMITTED","version":"4","created_at":"2027-01-15T07:00:00Z","updated_at":"2027-01-15T08:00:00Z"}}`
	// What Case-keeper sends, twice (a retry), then the same body tampered with.
	hdr, _ := webhooks.SignedHeaders("msg_1", time.Now(), []byte(body), secret)
	for _, b := range []string{body, body, strings.Replace(body, "SUBMITTED", "APPROVED", 1)} {
		r := httptest.NewRequest(http.MethodPost, "/webhooks", strings.NewReader(b))
		r.Header = hdr.Clone()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Println(w.Code)
	}
	// Output:
	// case.status_changed cas_1 4
	// 204
	// 204
	// 401
}
