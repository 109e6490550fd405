// Command follow prints every change of the tenant's cases as it happens, resuming after a restart from the
// cursor it keeps in acme.cursor. When the cursor has expired it resyncs: it reads every case, then follows the
// feed from its head.
//
//	CASEKEEPER_CLIENT_SECRET=acmeBackendDevSecret go run ./sdk/go/examples/follow
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	casekeeper "github.com/casekeeper/core/sdk/go"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	c, err := casekeeper.New(casekeeper.WithClientCredentials("acme-backend", os.Getenv("CASEKEEPER_CLIENT_SECRET")))
	if err != nil {
		return err
	}
	defer c.Close()
	store := casekeeper.NewFileCursorStore("acme.cursor")
	for {
		err := c.Follow(ctx, casekeeper.FollowOptions{Cursor: store}, func(ctx context.Context, ev *casekeeperv1.CaseEvent) error {
			fmt.Printf("%s %s version %d\n", ev.GetType(), ev.GetCaseId(), ev.GetCaseVersion())
			return nil // the cursor is saved once this returns nil
		})
		if !errors.Is(err, casekeeper.ErrResyncRequired) {
			return err
		}
		if err := resync(ctx, c, store); err != nil {
			return err
		}
	}
}

// resync stores the current state of every case, then moves the cursor to the head of the feed. Changes that
// happen between the two arrive through the feed as well; a case's version tells which state is newer.
func resync(ctx context.Context, c *casekeeper.Client, store casekeeper.CursorStore) error {
	head, err := c.ListEvents(ctx, &casekeeperv1.ListCaseEventsRequest{After: casekeeper.Latest})
	if err != nil {
		return err
	}
	req := &casekeeperv1.ListCasesRequest{PageSize: 200}
	for {
		page, err := c.ListCases(ctx, req)
		if err != nil {
			return err
		}
		for _, cs := range page.GetCases() {
			fmt.Printf("resync %s %s version %d\n", cs.GetId(), cs.GetStatus(), cs.GetVersion())
		}
		if req.PageToken = page.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	return store.Save(ctx, head.NextCursor)
}
