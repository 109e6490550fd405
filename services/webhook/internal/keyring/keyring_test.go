package keyring

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestSealOpenAndRotate(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, KeySize), bytes.Repeat([]byte{2}, KeySize)
	old, _ := New(k1)
	dk, wrapped, err := old.NewDataKey("ep_1")
	if err != nil {
		t.Fatal(err)
	}
	sealed := dk.Seal("secret/0", "whsec_abc")
	if strings.Contains(sealed, "whsec") || strings.Contains(wrapped, base64.StdEncoding.EncodeToString(k1)) {
		t.Fatalf("sealed %q / wrapped %q show what they hold", sealed, wrapped)
	}
	if Wrapped(wrapped) != old.CurrentID() {
		t.Fatalf("wrapped by %q, want %q", Wrapped(wrapped), old.CurrentID())
	}

	// After rotation: the new key wraps, the old one still opens.
	rotated, _ := Parse(base64.StdEncoding.EncodeToString(k2), " "+base64.StdEncoding.EncodeToString(k1)+" ,")
	dk2, err := rotated.Open("ep_1", wrapped)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := dk2.Open("secret/0", sealed); err != nil || v != "whsec_abc" {
		t.Fatalf("open after rotation: %q %v", v, err)
	}
	if _, w, _ := rotated.NewDataKey("ep_1"); Wrapped(w) != rotated.CurrentID() || Wrapped(w) == old.CurrentID() {
		t.Fatal("new data keys are not wrapped by the current key")
	}

	// Bound to record and field; unknown keys do not open.
	if _, err := rotated.Open("ep_2", wrapped); !errors.Is(err, ErrOpen) {
		t.Fatalf("data key moved to another record: %v", err)
	}
	if _, err := dk2.Open("header/X-Key", sealed); !errors.Is(err, ErrOpen) {
		t.Fatalf("value moved to another field: %v", err)
	}
	only2, _ := New(k2)
	if _, err := only2.Open("ep_1", wrapped); !errors.Is(err, ErrOpen) || !strings.Contains(err.Error(), "WEBHOOK_SECRETS_OLD_KEYS") {
		t.Fatalf("without the old key: %v", err)
	}
}

func TestParseRefusesBadKeys(t *testing.T) {
	for _, tc := range [][2]string{{"", ""}, {"not base64!", ""}, {base64.StdEncoding.EncodeToString([]byte("short")), ""},
		{base64.StdEncoding.EncodeToString(make([]byte, 32)), "bad"}} {
		if _, err := Parse(tc[0], tc[1]); err == nil {
			t.Errorf("Parse(%q, %q) accepted", tc[0], tc[1])
		}
	}
}
