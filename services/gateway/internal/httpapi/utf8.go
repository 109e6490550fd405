package httpapi

import (
	"net/http"
	"unicode/utf8"

	"github.com/casekeeper/core/pkg/grpcserver"
	"github.com/casekeeper/core/pkg/validation"
)

// withValidUTF8 refuses a request whose path or query, once decoded, is not UTF-8, naming the parameter. Protobuf
// strings must be UTF-8: such a value would otherwise fail when grpc-gateway forwards the request, as an internal
// error ("string field contains invalid UTF-8").
func withValidUTF8(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var errs validation.Errors
		if !utf8.ValidString(r.URL.Path) {
			errs.Add("path", "is not valid UTF-8 once decoded")
		}
		for name, values := range r.URL.Query() {
			field := name
			if !utf8.ValidString(name) {
				field = "query"
			}
			for _, v := range values {
				if !utf8.ValidString(name) || !utf8.ValidString(v) {
					errs.Add(field, "is not valid UTF-8 once decoded")
					break
				}
			}
		}
		if len(errs) > 0 {
			writeError(w, grpcserver.InvalidArgument(errs))
			return
		}
		next.ServeHTTP(w, r)
	})
}
