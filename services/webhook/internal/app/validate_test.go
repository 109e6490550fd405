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
		// Every spelling a resolver reads as an IPv4 address, other than a.b.c.d, is refused: public or not.
		{"https://2852039166/", false, false},
		{"https://0xa9fea9fe/", false, false},
		{"https://0XA9FEA9FE/", false, false},
		{"https://0251.0376.0251.0376/", false, false},
		{"https://169.254.43518/", false, false},
		{"https://127.1/", true, false},
		{"http://127.1/", true, false},
		{"https://0x7f.1/", true, false},
		{"https://169.254.169.254.:443/", false, false},
		{"https://8.8.8.8./", false, false},
		{"https://134744072/", false, false},
		{"https://010.8.8.8/", false, false},
		{"https://1.2.3.4.5/", false, false},
		{"https://1.2.3.256/", false, false},
		{"https://8.8.8.8/x", false, true},
		{"https://[::ffff:169.254.169.254]/", false, false},
		{"https://[::ffff:8.8.8.8]/", false, true},
		{"https://hooks.example.com./x", false, true},
		{"https://123.example.com/x", false, true},
		{"https://localhost./x", false, false},
		{"https://b\u00fccher.example/x", false, false},
		{"https://hooks.example.com/\u202ex", false, false},
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

// Text fields refuse control characters and bidirectional controls, naming the field; a jq program may span lines.
func TestValidateText(t *testing.T) {
	ok := func() delivery.Endpoint {
		return delivery.Endpoint{URL: "https://hooks.example.com/x", Format: delivery.FormatFull}
	}
	for _, tc := range []struct {
		name  string
		mod   func(*delivery.Endpoint)
		field string // empty: accepted
	}{
		{"NUL in description", func(e *delivery.Endpoint) { e.Description = "Acme\x00CRM" }, "endpoint.description"},
		{"ESC in description", func(e *delivery.Endpoint) { e.Description = "\x1b[2J Acme" }, "endpoint.description"},
		{"RLO in description", func(e *delivery.Endpoint) { e.Description = "Acme \u202eMRC" }, "endpoint.description"},
		{"line break in description", func(e *delivery.Endpoint) { e.Description = "Acme\nCRM" }, "endpoint.description"},
		{"plain description", func(e *delivery.Endpoint) { e.Description = "Acme CRM — Zürich" }, ""},
		{"ESC in disabled reason", func(e *delivery.Endpoint) { e.Disabled, e.DisabledReason = true, "off\x1b" }, "endpoint.disabled_reason"},
		{"ESC in a header value", func(e *delivery.Endpoint) { e.Headers = map[string]string{"X-Key": "a\x1bb"} }, "endpoint.headers"},
		{"NUL in a header value", func(e *delivery.Endpoint) { e.Headers = map[string]string{"X-Key": "a\x00b"} }, "endpoint.headers"},
		{"RLO in a header value", func(e *delivery.Endpoint) { e.Headers = map[string]string{"X-Key": "\u202eab"} }, "endpoint.headers"},
		{"tab inside a header value", func(e *delivery.Endpoint) { e.Headers = map[string]string{"X-Key": "a\tb"} }, ""},
		{"RLO in a header name", func(e *delivery.Endpoint) { e.Headers = map[string]string{"X-\u202eKey": "v"} }, "endpoint.headers"},
		{"NUL in the url", func(e *delivery.Endpoint) { e.URL = "https://hooks.example.com/\x00" }, "endpoint.url"},
		{"RLO in a jq program", func(e *delivery.Endpoint) { e.Format, e.JQ = delivery.FormatJQ, "{id: .data.id} # \u202e" }, "endpoint.jq_transform"},
		{"jq program over lines", func(e *delivery.Endpoint) { e.Format, e.JQ = delivery.FormatJQ, "{\n\tid: .data.id\r\n}" }, ""},
	} {
		e := ok()
		tc.mod(&e)
		errs := validateEndpoint(e, "endpoint.", false)
		switch {
		case tc.field == "" && len(errs) > 0:
			t.Errorf("%s: refused with %v", tc.name, errs)
		case tc.field != "" && (len(errs) != 1 || errs[0].Field != tc.field):
			t.Errorf("%s: got %v, want one error naming %s", tc.name, errs, tc.field)
		}
	}
}
