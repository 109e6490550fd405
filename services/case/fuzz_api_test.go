package casesvc_test

import (
	"context"
	"testing"

	"github.com/casekeeper/core/pkg/testinfra"
	pb "github.com/casekeeper/core/proto/casekeeper/v1"
)

// FuzzCaseAPI: every method of the case service, as an authenticated client of tenant acme, with requests decoded
// from arbitrary bytes (testinfra.FuzzService).
func FuzzCaseAPI(f *testing.F) {
	st := startStack(f)
	tok := token(f, acmeProvider)
	testinfra.FuzzService(f, testinfra.Dial(f, st.svc.GRPCAddr()),
		pb.File_casekeeper_v1_case_service_proto.Services().ByName("CaseService"),
		func() context.Context { return testinfra.Bearer(context.Background(), tok) },
		&pb.CreateCaseRequest{RequestId: "fuzz-seed", ExternalRef: "ref-\x00", Applicant: jane()})
}
