package tenant_test

import (
	"strings"
	"testing"

	"github.com/casekeeper/core/pkg/tenant"
)

func TestTenantIDsAreSafeSubjectTokens(t *testing.T) {
	for _, ok := range []string{"acme", "globex-2", "a_b", "0", strings.Repeat("a", 63)} {
		if !tenant.Valid(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", "acme.evil", "a b", "*", ">", "Acme", "x/y", "-acme", strings.Repeat("a", 64)} {
		if tenant.Valid(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}
