package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	"github.com/casekeeper/core/proto/webhookbody"
	casekeeper "github.com/casekeeper/core/sdk/go"
)

// forwardTimeout is the webhook service's own request timeout: a receiver that passes here passes there.
const forwardTimeout = 15 * time.Second

// webhooksListen follows the feed and delivers each event to a local receiver the way the webhook service would
// deliver it to a registered endpoint in the full payload format: the same body, Standard Webhooks headers signed
// with a secret of its own. Only cases:read is needed, and the receiver needs no public URL.
func webhooksListen(ctx context.Context, args []string, out *output) error {
	var conn connection
	fs := conn.flags("webhooks listen")
	forwardTo := fs.String("forward-to", "", "the receiver's URL, e.g. http://localhost:8099/webhooks (required)")
	secret := fs.String("secret", "", "the signing secret, whsec_… (default: a new one, printed at start)")
	retries := fs.Int("retries", 3, "how many times a failed forward is tried again")
	var ff feedFlags
	fs.StringVar(&ff.after, "after", casekeeper.Latest, `start after this cursor; "latest" forwards only new events`)
	fs.StringVar(&ff.cursorFile, "cursor-file", "", "keep the position in this file (a restart resumes there)")
	fs.StringVar(&ff.via, "via", "poll", "how to follow the feed: poll (long-poll), sse or grpc")
	fs.Var(&ff.types, "types", "only these event types; repeatable (default: all)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	target, err := url.Parse(*forwardTo)
	if *forwardTo == "" || err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return usageError{"webhooks listen needs --forward-to with an http(s) URL"}
	}
	if *retries < 0 {
		return usageError{"--retries must not be negative"}
	}
	if *secret == "" {
		if *secret, err = casekeeper.NewWebhookSecret(); err != nil {
			return err
		}
	} else if _, err := casekeeper.NewWebhookVerifier([]string{*secret}); err != nil {
		return usageError{"--secret is not whsec_ followed by the base64 of 24 to 64 bytes"}
	}
	// --after has a default here: it wins over a cursor file only when given.
	o, err := ff.options(ff.after, isSet(fs, "after") || ff.cursorFile == "")
	if err != nil {
		return err
	}
	o.OnRetry = retryLogger(out)
	c, err := conn.client()
	if err != nil {
		return err
	}
	defer c.Close()

	fw := &forwarder{url: target.String(), secret: *secret, retries: *retries, out: out, http: &http.Client{
		Timeout: forwardTimeout,
		// The webhook service follows no redirect: a 3xx is a failed attempt there, and so here.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	fmt.Fprintf(out.stdout, "Signing secret: %s\n", *secret)
	fmt.Fprintf(out.stdout, "Forwarding the events of the feed to %s (full payload format); Ctrl-C stops.\n", fw.url)
	return followEnded(ctx, c.Follow(ctx, o, fw.forward))
}

type forwarder struct {
	url     string
	secret  string
	retries int
	http    *http.Client
	out     *output
}

// forward delivers one event, trying again a few times; an event that cannot be delivered is reported and
// skipped, so that a receiver that crashed on one event does not stop the ones behind it.
func (f *forwarder) forward(ctx context.Context, ev *casekeeperv1.CaseEvent) error {
	body, err := webhookbody.Full(ev)
	if err != nil {
		return err
	}
	id := webhookID(ev.GetId())
	for attempt := 0; attempt <= f.retries; attempt++ {
		if attempt > 0 {
			wait := time.Duration(1<<(attempt-1)) * time.Second
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		result := f.post(ctx, id, body)
		fmt.Fprintf(f.out.stdout, "%s %s case %s v%d %s → %s\n", time.Now().Format("15:04:05"), ev.GetType(),
			ev.GetCaseId(), ev.GetCaseVersion(), id, result)
		if strings.HasPrefix(result, "2") {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	fmt.Fprintf(f.out.stdout, "gave up on %s after %d attempts\n", id, f.retries+1)
	return nil
}

// post sends one signed attempt and describes its outcome: the status, or why there was none.
func (f *forwarder) post(ctx context.Context, id string, body []byte) string {
	h, err := casekeeper.SignWebhook(id, time.Now(), body, f.secret)
	if err != nil {
		return "not signed: " + err.Error()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url, bytes.NewReader(body))
	if err != nil {
		return err.Error()
	}
	req.Header = h
	req.Header.Set("User-Agent", "Casekeeper-Webhooks/1")
	resp, err := f.http.Do(req)
	if err != nil {
		return "failed: " + oneLine(err.Error())
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	return resp.Status
}

// webhookID is the webhook-id of an event's forward: derived from the event id, so that every attempt, and a
// second listen over the same events, carries the same one, as the service's retries do.
func webhookID(eventID string) string {
	sum := sha256.Sum256([]byte("casekeeper-listen:" + eventID))
	return "msg_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))[:26]
}
