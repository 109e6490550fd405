package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	casekeeperv1 "github.com/casekeeper/core/proto/casekeeper/v1"
	casekeeper "github.com/casekeeper/core/sdk/go"
)

func compact(b []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return string(b)
	}
	return buf.String()
}

func tokenCmd(ctx context.Context, args []string, out *output) error {
	var conn connection
	fs := conn.flags("token")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := conn.client()
	if err != nil {
		return err
	}
	defer c.Close()
	tok, err := c.Token(ctx)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out.stdout, tok)
	return err
}

func casesCreate(ctx context.Context, args []string, out *output) error {
	var conn connection
	fs := conn.flags("cases create")
	requestID := fs.String("request-id", "", "idempotency key (required)")
	ref := fs.String("ref", "", "your reference of the case (external_ref)")
	name := fs.String("name", "", "the applicant's full name")
	nationality := fs.String("nationality", "", "the applicant's nationality (ISO 3166-1 alpha-2)")
	email := fs.String("email", "", "the applicant's email")
	level := fs.String("level", "basic", "verification level: basic, standard or enhanced")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *requestID == "" {
		return usageError{"cases create needs --request-id"}
	}
	lv, ok := casekeeperv1.VerificationLevel_value["VERIFICATION_LEVEL_"+strings.ToUpper(*level)]
	if !ok {
		return usageError{fmt.Sprintf("--level %q is not basic, standard or enhanced", *level)}
	}
	c, err := conn.client()
	if err != nil {
		return err
	}
	defer c.Close()
	created, err := c.CreateCase(ctx, &casekeeperv1.CreateCaseRequest{RequestId: *requestID, ExternalRef: *ref,
		Level:     casekeeperv1.VerificationLevel(lv),
		Applicant: &casekeeperv1.Applicant{FullName: *name, Nationality: *nationality, Email: *email}})
	if err != nil {
		return err
	}
	return out.json(created)
}

func casesGet(ctx context.Context, args []string, out *output) error {
	var conn connection
	pos, err := parse(conn.flags("cases get"), args, "ID")
	if err != nil {
		return err
	}
	c, err := conn.client()
	if err != nil {
		return err
	}
	defer c.Close()
	got, err := c.GetCase(ctx, pos[0])
	if err != nil {
		return err
	}
	return out.json(got)
}

func casesList(ctx context.Context, args []string, out *output) error {
	var conn connection
	fs := conn.flags("cases list")
	var statuses list
	fs.Var(&statuses, "status", "only cases in this status (e.g. in_review); repeatable")
	ref := fs.String("ref", "", "only the cases with this external_ref")
	limit := fs.Int("limit", 0, "print at most this many cases (0: all)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	req := &casekeeperv1.ListCasesRequest{ExternalRef: *ref, PageSize: 200}
	for _, s := range statuses {
		v, ok := casekeeperv1.CaseStatus_value["CASE_STATUS_"+strings.ToUpper(s)]
		if !ok {
			v, ok = casekeeperv1.CaseStatus_value[s]
		}
		if !ok {
			return usageError{fmt.Sprintf("--status %q is not a case status", s)}
		}
		req.Statuses = append(req.Statuses, casekeeperv1.CaseStatus(v))
	}
	c, err := conn.client()
	if err != nil {
		return err
	}
	defer c.Close()
	printed := 0
	for {
		page, err := c.ListCases(ctx, req)
		if err != nil {
			return err
		}
		for _, cs := range page.GetCases() {
			if *limit > 0 && printed == *limit {
				return nil
			}
			if err := out.json(cs); err != nil {
				return err
			}
			printed++
		}
		if page.GetNextPageToken() == "" {
			return nil
		}
		req.PageToken = page.GetNextPageToken()
	}
}

// startAt is a cursor store that starts at a position given on the command line, whatever it holds.
type startAt struct {
	casekeeper.CursorStore
	first string
}

func (s startAt) Load(context.Context) (string, error) { return s.first, nil }

// feedFlags are the flags of the commands that follow the feed.
type feedFlags struct {
	after, cursorFile, via string
	types                  list
}

func (f *feedFlags) options(after string, set bool) (casekeeper.FollowOptions, error) {
	via, err := casekeeper.ParseTransport(f.via)
	if err != nil {
		return casekeeper.FollowOptions{}, usageError{"--via: " + err.Error()}
	}
	var store casekeeper.CursorStore = &casekeeper.MemoryCursorStore{}
	if f.cursorFile != "" {
		store = casekeeper.NewFileCursorStore(f.cursorFile)
	}
	if set {
		// Given on the command line, --after wins over a stored cursor.
		store = startAt{CursorStore: store, first: after}
	}
	return casekeeper.FollowOptions{Via: via, Cursor: store, After: after, Types: f.types}, nil
}

func eventsTail(ctx context.Context, args []string, out *output) error {
	var conn connection
	fs := conn.flags("events tail")
	var ff feedFlags
	fs.StringVar(&ff.after, "after", "", `start after this cursor, or "latest" (default: the stored cursor, else the oldest event)`)
	fs.StringVar(&ff.cursorFile, "cursor-file", "", "keep the position in this file (resumes where the last run stopped)")
	fs.StringVar(&ff.via, "via", "poll", "with --follow: poll (long-poll), sse or grpc")
	fs.Var(&ff.types, "types", "only these event types (e.g. case.status_changed); repeatable")
	follow := fs.Bool("follow", false, "keep following the feed instead of stopping when caught up")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	o, err := ff.options(ff.after, isSet(fs, "after"))
	if err != nil {
		return err
	}
	if !*follow {
		if o.Via != casekeeper.ViaPoll {
			return usageError{"--via sse and grpc need --follow"}
		}
		o.UntilCaughtUp = true
	}
	o.OnRetry = retryLogger(out)
	c, err := conn.client()
	if err != nil {
		return err
	}
	defer c.Close()
	err = c.Follow(ctx, o, func(_ context.Context, ev *casekeeperv1.CaseEvent) error { return out.json(ev) })
	return followEnded(ctx, err)
}

// followEnded makes the end of a follower an exit status: Ctrl-C is a normal end.
func followEnded(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil
	}
	if errors.Is(err, casekeeper.ErrResyncRequired) {
		return errors.New("the cursor has expired: resync (casekeeper cases list), then follow from --after latest")
	}
	return err
}

func retryLogger(out *output) func(error, time.Duration) {
	return func(err error, wait time.Duration) {
		msg := strings.TrimPrefix(oneLine(err.Error()), "casekeeper: ")
		fmt.Fprintf(out.stderr, "casekeeper: %s; again in %s\n", msg, wait.Round(time.Millisecond))
	}
}

func webhooksEndpoints(ctx context.Context, args []string, out *output) error {
	if len(args) == 0 {
		return usageError{"webhooks endpoints needs list, create or delete"}
	}
	var conn connection
	switch args[0] {
	case "list":
		if _, err := parse(conn.flags("webhooks endpoints list"), args[1:]); err != nil {
			return err
		}
		c, err := conn.client()
		if err != nil {
			return err
		}
		defer c.Close()
		tw := tabwriter.NewWriter(out.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tURL\tFORMAT\tTYPES\tSTATE")
		token := ""
		for {
			page, err := c.ListEndpoints(ctx, 100, token)
			if err != nil {
				return err
			}
			for _, ep := range page.GetEndpoints() {
				types, state := "all", "enabled"
				if len(ep.GetEventTypes()) > 0 {
					types = strings.Join(ep.GetEventTypes(), ",")
				}
				if ep.GetDisabled() {
					state = "disabled: " + ep.GetDisabledReason()
				}
				format := strings.ToLower(strings.TrimPrefix(ep.GetPayloadFormat().String(), "PAYLOAD_FORMAT_"))
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ep.GetId(), ep.GetUrl(), format, types, state)
			}
			if token = page.GetNextPageToken(); token == "" {
				return tw.Flush()
			}
		}
	case "create":
		fs := conn.flags("webhooks endpoints create")
		u := fs.String("url", "", "the endpoint's URL (required)")
		desc := fs.String("description", "", "a description")
		format := fs.String("format", "full", "payload format: full or thin")
		var types list
		fs.Var(&types, "types", "only these event types; repeatable (default: all)")
		if _, err := parse(fs, args[1:]); err != nil {
			return err
		}
		if *u == "" {
			return usageError{"webhooks endpoints create needs --url"}
		}
		pf, ok := casekeeperv1.PayloadFormat_value["PAYLOAD_FORMAT_"+strings.ToUpper(*format)]
		if !ok || *format == "jq" {
			return usageError{fmt.Sprintf("--format %q is not full or thin", *format)}
		}
		c, err := conn.client()
		if err != nil {
			return err
		}
		defer c.Close()
		resp, err := c.CreateEndpoint(ctx, &casekeeperv1.Endpoint{Url: *u, Description: *desc, EventTypes: types,
			PayloadFormat: casekeeperv1.PayloadFormat(pf)})
		if err != nil {
			return err
		}
		fmt.Fprintf(out.stdout, "endpoint %s\nsecret   %s\n", resp.GetEndpoint().GetId(), resp.GetSecret())
		return nil
	case "delete":
		pos, err := parse(conn.flags("webhooks endpoints delete"), args[1:], "ID")
		if err != nil {
			return err
		}
		c, err := conn.client()
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.DeleteEndpoint(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(out.stdout, "deleted %s\n", pos[0])
		return nil
	}
	return usageError{fmt.Sprintf("unknown command \"webhooks endpoints %s\"", args[0])}
}

func isSet(fs interface{ Visit(func(*flag.Flag)) }, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
