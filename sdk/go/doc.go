// Package casekeeper is the Go client of Case-keeper Core for a tenant's backend: it takes access tokens by client
// credentials and renews them before they expire, follows the change feed from a cursor it keeps in a store (by
// polling GET /v1/events with long-poll, or over the SSE and gRPC push streams, reconnecting with backoff), reads
// cases, manages webhook endpoints, and verifies the webhooks Case-keeper sends (pkg/webhooks, re-exported here so
// that one import suffices).
//
//	c, err := casekeeper.New(casekeeper.WithClientCredentials("acme-backend", secret))
//	...
//	err = c.Follow(ctx, casekeeper.FollowOptions{Cursor: casekeeper.NewFileCursorStore("acme.cursor")},
//		func(ctx context.Context, ev *casekeeperv1.CaseEvent) error {
//			// store the change; the cursor is saved only after this returns nil
//			return nil
//		})
//	if errors.Is(err, casekeeper.ErrResyncRequired) {
//		// the stored cursor is older than the feed's retention: list the cases, then follow from casekeeper.Latest
//	}
//
// A handler sees every event at least once and in feed order: the cursor is saved after the handler returned, so an
// event whose handler ran just before a crash is handed over again after a restart. Deduplicate by the event's id
// (or drop an event whose case_version is not newer than the one you hold).
package casekeeper
