package validation

import (
	"fmt"
	"unicode/utf8"
)

// TextRule says what a text field may hold besides printable characters.
type TextRule struct {
	// Multiline allows line feeds (and the carriage returns and tabs that come with pasted text): jq programs,
	// documented free text. Every other control character is refused either way.
	Multiline bool
	// Tab allows the horizontal tab on one line (HTTP header values, RFC 9110 §5.5).
	Tab bool
}

// Text adds an error for the field when value is not valid UTF-8, holds a control character (C0, DEL, C1) the rule
// does not allow, or holds a Unicode bidirectional control (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C),
// which makes text display differently from what it is.
func (e *Errors) Text(field, value string, rule TextRule) {
	if msg := textProblem(value, rule); msg != "" {
		e.Add(field, "%s", msg)
	}
}

// TextProblem describes why value is not acceptable text under rule; empty when it is.
func TextProblem(value string, rule TextRule) string { return textProblem(value, rule) }

func textProblem(value string, rule TextRule) string {
	if !utf8.ValidString(value) {
		return "must be valid UTF-8"
	}
	for i, r := range value {
		switch {
		case r == '\n' || r == '\r':
			if !rule.Multiline {
				return fmt.Sprintf("must be one line (a line break at byte %d)", i)
			}
		case r == '\t':
			if !rule.Multiline && !rule.Tab {
				return fmt.Sprintf("must not hold a tab (at byte %d)", i)
			}
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return fmt.Sprintf("must not hold the control character U+%04X (at byte %d)", r, i)
		case bidiControl(r):
			return fmt.Sprintf("must not hold the bidirectional control U+%04X (at byte %d)", r, i)
		}
	}
	return ""
}

func bidiControl(r rune) bool {
	return (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0x061c
}
