package webhooks_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/webhooks"
)

// The test vector published with the Standard Webhooks specification: our verifier agrees with every other
// implementation on it.
const (
	specSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTS     = 1614265330
	specBody   = `{"test": 2432232314}`
	specSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

var (
	secretA = "whsec_" + strings.Repeat("QUFB", 8) // 24 bytes of 'A'
	secretB = "whsec_" + strings.Repeat("QkJC", 8)
)

func at(unix int64) func() time.Time { return func() time.Time { return time.Unix(unix, 0) } }

func headers(id string, ts int64, sig string) http.Header {
	h := http.Header{}
	h.Set(webhooks.HeaderID, id)
	h.Set(webhooks.HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(webhooks.HeaderSignature, sig)
	return h
}

func TestSpecVector(t *testing.T) {
	got, err := webhooks.Sign(specID, time.Unix(specTS, 0), []byte(specBody), specSecret)
	if err != nil || got != specSig {
		t.Fatalf("Sign = %q, %v; want %q", got, err, specSig)
	}
	v, err := webhooks.NewVerifier([]string{specSecret}, webhooks.WithClock(at(specTS+10)))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(headers(specID, specTS, specSig), []byte(specBody)); err != nil {
		t.Fatalf("the spec's own example does not verify: %v", err)
	}
}

func TestVerify(t *testing.T) {
	const now = 1_800_000_000
	body := []byte(`{"type":"case.created","timestamp":"2027-01-15T08:00:00Z","data":{"id":"c1"}}`)
	sign := func(id string, ts int64, b []byte, secrets ...string) string {
		s, err := webhooks.Sign(id, time.Unix(ts, 0), b, secrets...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := sign("msg_1", now, body, secretA)
	tol := int64(webhooks.DefaultTolerance / time.Second)
	cases := []struct {
		name    string
		secrets []string
		h       http.Header
		body    []byte
		want    error
	}{
		{"valid", []string{secretA}, headers("msg_1", now, good), body, nil},
		{"body changed", []string{secretA}, headers("msg_1", now, good), append([]byte(" "), body...), webhooks.ErrNoMatchingSignature},
		{"id changed", []string{secretA}, headers("msg_2", now, good), body, webhooks.ErrNoMatchingSignature},
		{"timestamp changed", []string{secretA}, headers("msg_1", now+1, good), body, webhooks.ErrNoMatchingSignature},
		{"other secret", []string{secretB}, headers("msg_1", now, good), body, webhooks.ErrNoMatchingSignature},
		{"rotation: new and previous signatures, receiver has the previous",
			[]string{secretA}, headers("msg_1", now, sign("msg_1", now, body, secretB, secretA)), body, nil},
		{"rotation: receiver holds both secrets, request signed with the new one",
			[]string{secretA, secretB}, headers("msg_1", now, sign("msg_1", now, body, secretB)), body, nil},
		{"rotation: two signatures, neither ours", []string{secretA},
			headers("msg_1", now, sign("msg_1", now, body, secretB, secretB)), body, webhooks.ErrNoMatchingSignature},
		{"unknown scheme ignored", []string{secretA}, headers("msg_1", now, "v1a,"+strings.TrimPrefix(good, "v1,")), body, webhooks.ErrNoMatchingSignature},
		{"unknown scheme beside ours", []string{secretA}, headers("msg_1", now, "v2,xyz "+good), body, nil},
		{"extra spaces", []string{secretA}, headers("msg_1", now, "  "+good+"  "), body, nil},
		{"bad base64", []string{secretA}, headers("msg_1", now, "v1,!!!"), body, webhooks.ErrNoMatchingSignature},
		{"truncated signature", []string{secretA}, headers("msg_1", now, good[:20]), body, webhooks.ErrNoMatchingSignature},
		{"at the tolerance, past", []string{secretA}, headers("msg_1", now-tol, sign("msg_1", now-tol, body, secretA)), body, nil},
		{"at the tolerance, future", []string{secretA}, headers("msg_1", now+tol, sign("msg_1", now+tol, body, secretA)), body, nil},
		{"replay after the tolerance", []string{secretA}, headers("msg_1", now-tol-1, sign("msg_1", now-tol-1, body, secretA)), body, webhooks.ErrTimestampOutOfTolerance},
		{"too far in the future", []string{secretA}, headers("msg_1", now+tol+1, sign("msg_1", now+tol+1, body, secretA)), body, webhooks.ErrTimestampOutOfTolerance},
		{"no headers", []string{secretA}, http.Header{}, body, webhooks.ErrMissingHeaders},
		{"no signature", []string{secretA}, headers("msg_1", now, ""), body, webhooks.ErrMissingHeaders},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := webhooks.NewVerifier(c.secrets, webhooks.WithClock(at(now)))
			if err != nil {
				t.Fatal(err)
			}
			err = v.Verify(c.h, c.body)
			if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
		})
	}
}

func TestVerifyMalformedTimestamps(t *testing.T) {
	v, _ := webhooks.NewVerifier([]string{secretA})
	for _, ts := range []string{"abc", "+1800000000", "-5", "1.5", " 1800000000", "1e9", "0x10", "9999999999999999999999"} {
		h := headers("msg_1", 0, "v1,AAAA")
		h.Set(webhooks.HeaderTimestamp, ts)
		if err := v.Verify(h, nil); !errors.Is(err, webhooks.ErrBadTimestamp) {
			t.Errorf("timestamp %q: %v, want ErrBadTimestamp", ts, err)
		}
	}
}

func TestSecrets(t *testing.T) {
	for _, s := range []string{"", "whsec_", "QUFB", "whsec_!!!", "whsec_" + strings.Repeat("QUFB", 4), "whsec_" + strings.Repeat("QUFB", 30)} {
		if _, err := webhooks.NewVerifier([]string{s}); !errors.Is(err, webhooks.ErrBadSecret) {
			t.Errorf("secret %q: %v, want ErrBadSecret", s, err)
		}
	}
	if _, err := webhooks.NewVerifier(nil); !errors.Is(err, webhooks.ErrBadSecret) {
		t.Errorf("no secret: %v", err)
	}
	if _, err := webhooks.NewVerifier([]string{secretA}, webhooks.WithTolerance(0)); err == nil {
		t.Error("a zero tolerance was accepted")
	}
	// Pasted with a newline from a terminal: still the same secret.
	if _, err := webhooks.NewVerifier([]string{secretA + "\n"}); err != nil {
		t.Error(err)
	}
}

func TestVerifyFunction(t *testing.T) {
	body := []byte(`{}`)
	now := time.Now()
	h, err := webhooks.SignedHeaders("msg_9", now.Add(-9*time.Minute), body, secretA)
	if err != nil {
		t.Fatal(err)
	}
	if err := webhooks.Verify(secretA, h, body, 0); !errors.Is(err, webhooks.ErrTimestampOutOfTolerance) {
		t.Fatalf("default tolerance: %v", err)
	}
	if err := webhooks.Verify(secretA, h, body, 10*time.Minute); err != nil {
		t.Fatalf("ten minutes: %v", err)
	}
}
