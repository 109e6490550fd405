package app

import (
	"testing"

	"github.com/casekeeper/core/services/webhook/internal/delivery"
)

func TestValidateURL(t *testing.T) {
	for _, tc := range []struct {
		url      string
		loopback bool
		ok       bool
	}{
		{"https://hooks.example.com/x", false, true},
		{"http://hooks.example.com/x", false, false},
		{"http://hooks.example.com/x", true, false},
		{"http://127.0.0.1:8080/x", true, true},
		{"http://localhost:8080/x", true, true},
		{"http://[::1]:8080/x", true, true},
		{"https://127.0.0.1/x", false, false},
		{"https://localhost/x", false, false},
		{"https://10.1.2.3/x", true, false},
		{"https://169.254.169.254/latest", true, false},
		{"https://[fe80::1]/x", false, false},
		{"https://0.0.0.0/x", false, false},
		{"ftp://hooks.example.com/x", false, false},
		{"https://user:pw@hooks.example.com/", false, false},
		{"https://hooks.example.com/#frag", false, false},
	} {
		errs := validateEndpoint(delivery.Endpoint{URL: tc.url, Format: delivery.FormatFull}, "endpoint.", tc.loopback)
		if ok := len(errs) == 0; ok != tc.ok {
			t.Errorf("%s (loopback %v): ok=%v, errors %v", tc.url, tc.loopback, ok, errs)
		}
		for _, e := range errs {
			if e.Field != "endpoint.url" {
				t.Errorf("%s: field %s", tc.url, e.Field)
			}
		}
	}
}
