// Package tenant holds the shape of a tenant id, the one rule every service applies to it. A tenant id ends up in
// NATS subjects (cases.<tenant>.<case id>) and in database keys, so an id that does not fit — say "acme.>" from a
// token claim or a metadata header — is refused rather than escaped.
package tenant

import "regexp"

var pattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Valid reports whether id has the shape of a tenant id: lower-case letters, digits, '_' and '-', starting with a
// letter or digit, at most 63 bytes.
func Valid(id string) bool { return pattern.MatchString(id) }
