// Command receiver is a webhook receiver built on the SDK alone: it verifies each request with the endpoint's
// secret and prints the case it carries. Try it without a public URL:
//
//	WEBHOOK_SECRET=whsec_… go run ./sdk/go/examples/receiver &
//	casekeeper webhooks listen --forward-to http://127.0.0.1:8099/webhooks --secret "$WEBHOOK_SECRET"
package main

import (
	"log"
	"net/http"
	"os"

	casekeeper "github.com/casekeeper/core/sdk/go"
)

func main() {
	v, err := casekeeper.NewWebhookVerifier([]string{os.Getenv("WEBHOOK_SECRET")})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks", casekeeper.WebhookMiddleware(v, casekeeper.WebhookFormatFull, http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			e := casekeeper.WebhookFromContext(r.Context())
			c, err := casekeeper.WebhookCase(e)
			if err != nil {
				http.Error(w, "not a case", http.StatusBadRequest)
				return
			}
			// Deduplicate by e.ID and drop a version older than the one you hold before acting.
			log.Printf("%s %s: %s version %d", e.ID, e.Type, c.GetId(), c.GetVersion())
			w.WriteHeader(http.StatusNoContent)
		})))
	log.Fatal(http.ListenAndServe("127.0.0.1:8099", mux))
}
