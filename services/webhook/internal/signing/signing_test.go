package signing

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/webhooks"
)

func verify(secret string, h http.Header, body []byte, now time.Time) error {
	v, err := webhooks.NewVerifier([]string{secret}, webhooks.WithClock(func() time.Time { return now }))
	if err != nil {
		return err
	}
	return v.Verify(h, body)
}

// The example of the Standard Webhooks specification: a third-party vector, not one we computed ourselves.
func TestSignatureMatchesSpecificationExample(t *testing.T) {
	s, err := NewSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := s.Signature("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("signature %q, want %q", got, want)
	}
}

func TestRotationSignsWithBothAndEitherVerifies(t *testing.T) {
	a, _ := NewSecret()
	b, _ := NewSecret()
	s, err := NewSigner(b, a)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	h := http.Header{}
	body := []byte(`{"type":"case.created"}`)
	s.Sign(h, "msg_1", now, body)
	if n := len(strings.Fields(h.Get(webhooks.HeaderSignature))); n != 2 {
		t.Fatalf("%d signatures, want 2", n)
	}
	for _, sec := range []string{a, b} {
		if err := verify(sec, h, body, now); err != nil {
			t.Errorf("verify: %v", err)
		}
	}
	other, _ := NewSecret()
	if err := verify(other, h, body, now); !errors.Is(err, webhooks.ErrNoMatchingSignature) {
		t.Errorf("foreign secret: %v, want ErrMismatch", err)
	}
	if err := verify(a, h, []byte(`{}`), now); !errors.Is(err, webhooks.ErrNoMatchingSignature) {
		t.Errorf("tampered body: %v, want ErrMismatch", err)
	}
	if err := verify(a, h, body, now.Add(10*time.Minute)); !errors.Is(err, webhooks.ErrTimestampOutOfTolerance) {
		t.Errorf("stale: %v, want ErrBadTimestamp", err)
	}
}

func TestNewSignerRejectsBadSecrets(t *testing.T) {
	for _, s := range []string{"", "whsec_", "abc", "whsec_!!!", "whsec_c2hvcnQ="} {
		if _, err := NewSigner(s); err == nil {
			t.Errorf("NewSigner(%q) accepted", s)
		}
	}
	if _, err := NewSigner(); err == nil {
		t.Error("NewSigner() without a secret accepted")
	}
}
