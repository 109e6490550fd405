package validation

import (
	"strings"
	"testing"
)

func TestText(t *testing.T) {
	for _, tc := range []struct {
		value string
		rule  TextRule
		want  string // substring of the message; empty: accepted
	}{
		{"Acme CRM — Zürich", TextRule{}, ""},
		{"", TextRule{}, ""},
		{"a\x00b", TextRule{}, "U+0000"},
		{"a\x1b[31mred", TextRule{}, "U+001B"},
		{"a\x7f", TextRule{}, "U+007F"},
		{"a\u0085b", TextRule{Multiline: true}, "U+0085"},
		{"invoice\u202egpj.exe", TextRule{}, "bidirectional control U+202E"},
		{"x\u2066y", TextRule{Multiline: true}, "U+2066"},
		{"two\nlines", TextRule{}, "one line"},
		{"two\r\nlines\tok", TextRule{Multiline: true}, ""},
		{"a\tb", TextRule{}, "tab"},
		{"a\tb", TextRule{Tab: true}, ""},
		{"bad \xff utf-8", TextRule{}, "UTF-8"},
	} {
		var errs Errors
		errs.Text("f", tc.value, tc.rule)
		switch {
		case tc.want == "" && len(errs) > 0:
			t.Errorf("%q: refused with %v", tc.value, errs)
		case tc.want != "" && (len(errs) != 1 || errs[0].Field != "f" || !strings.Contains(errs[0].Message, tc.want)):
			t.Errorf("%q: got %v, want a refusal of f mentioning %q", tc.value, errs, tc.want)
		}
	}
}
