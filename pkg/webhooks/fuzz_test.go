package webhooks_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/webhooks"
)

// FuzzVerify feeds arbitrary header values and bodies to Verify. It must never panic, and must accept a request
// only when the signature header really holds the v1 HMAC of "id.timestamp.body" under the secret and the
// timestamp is within the tolerance: no malformed header may slip through.
func FuzzVerify(f *testing.F) {
	const now = 1_800_000_000
	good, _ := webhooks.Sign("msg_1", time.Unix(now, 0), []byte(`{}`), secretA)
	f.Add("msg_1", "1800000000", good, []byte(`{}`))
	f.Add("msg_1", "1800000000", "v1,"+strings.Repeat("A", 44)+" "+good, []byte(`{}`))
	f.Add("msg_1", "1800000000", "v1,", []byte(`{}`))
	f.Add("msg_1", "1800000000", ",", []byte{})
	f.Add("", "", "", []byte(nil))
	f.Add("msg_1", "-1", "v1,,,,", []byte(`{}`))
	f.Add("msg_1", "18000000000000000000", good, []byte(`{}`))
	f.Add("a.b", "1800000000", "v1,"+good+" v1a,abc v2", []byte("\x00\xff"))
	key, _ := webhooks.DecodeSecret(secretA)
	v, err := webhooks.NewVerifier([]string{secretA}, webhooks.WithClock(at(now)))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h[http.CanonicalHeaderKey(webhooks.HeaderID)] = []string{id}
		h[http.CanonicalHeaderKey(webhooks.HeaderTimestamp)] = []string{ts}
		h[http.CanonicalHeaderKey(webhooks.HeaderSignature)] = []string{sig}
		if v.Verify(h, body) != nil {
			return
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(id + "." + ts + "."))
		m.Write(body)
		want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
		if !strings.Contains(" "+strings.Join(strings.Fields(sig), " ")+" ", " "+want+" ") {
			t.Fatalf("accepted id=%q ts=%q sig=%q without the right signature", id, ts, sig)
		}
		n, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || strings.TrimLeft(ts, "0123456789") != "" || n < now-300 || n > now+300 {
			t.Fatalf("accepted timestamp %q, not decimal seconds within five minutes of now", ts)
		}
	})
}

// FuzzMiddleware sends arbitrary requests through the middleware: it answers every one without panicking, and
// calls the handler only with a verified, decoded event.
func FuzzMiddleware(f *testing.F) {
	v, err := webhooks.NewVerifier([]string{secretA})
	if err != nil {
		f.Fatal(err)
	}
	h := webhooks.Middleware(v, webhooks.FormatFull, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := webhooks.FromContext(r.Context()); e == nil || e.Data == nil || e.ID == "" {
			panic("handler called without a decoded event")
		}
	}))
	f.Add("msg_1", "", "v1,abc", []byte(fullBody), true)
	f.Add("msg_1", "", "", []byte(fullBody), false)
	f.Add("msg_1", "x", "v1,abc", []byte(`{"type":"a","timestamp":"2027-01-15T08:00:00Z","data":{"id":"x"}}`), true)
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte, signIt bool) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
		r.Header.Set(webhooks.HeaderID, id)
		r.Header.Set(webhooks.HeaderTimestamp, ts)
		r.Header.Set(webhooks.HeaderSignature, sig)
		if signIt && id != "" {
			hdr, err := webhooks.SignedHeaders(id, time.Now(), body, secretA)
			if err != nil {
				t.Fatal(err)
			}
			for k, vs := range hdr {
				r.Header[k] = vs
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code == 0 {
			t.Fatal("no status")
		}
	})
}
