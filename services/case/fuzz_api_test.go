package casesvc_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/casekeeper/core/pkg/testinfra"
	pb "github.com/casekeeper/core/proto/casekeeper/v1"
)

// FuzzCaseAPI sends every method of the case service requests decoded from arbitrary bytes, as an authenticated
// client of tenant acme. Whatever the input: no panic and no internal error; a refusal for bad input is
// INVALID_ARGUMENT and names the field. `go test` runs the seeds (one per method); `go test -fuzz FuzzCaseAPI` explores.
func FuzzCaseAPI(f *testing.F) {
	st := startStack(f)
	conn := testinfra.Dial(f, st.svc.GRPCAddr())
	methods := pb.File_casekeeper_v1_case_service_proto.Services().ByName("CaseService").Methods()
	seed, err := proto.Marshal(&pb.CreateCaseRequest{RequestId: "fuzz-seed", ExternalRef: "ref-\x00", Applicant: jane()})
	if err != nil {
		f.Fatal(err)
	}
	for i := range methods.Len() {
		f.Add(uint8(i), []byte{})
		f.Add(uint8(i), seed)
	}
	tok := token(f, acmeProvider)
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		m := methods.Get(int(which) % methods.Len())
		if m.IsStreamingServer() || m.IsStreamingClient() {
			return
		}
		req, resp := newMessage(t, m.Input()), newMessage(t, m.Output())
		if err := proto.Unmarshal(payload, req); err != nil {
			return // not a request at all: the transport refuses it before the service sees it
		}
		ctx, cancel := context.WithTimeout(testinfra.Bearer(context.Background(), tok), 10*time.Second)
		defer cancel()
		err := conn.Invoke(ctx, "/"+string(m.Parent().FullName())+"/"+string(m.Name()), req, resp, grpc.WaitForReady(true))
		checkRefusal(t, string(m.Name()), err)
	})
}

func newMessage(t *testing.T, d protoreflect.MessageDescriptor) proto.Message {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(d.FullName())
	if err != nil {
		t.Fatal(err)
	}
	return mt.New().Interface()
}

// checkRefusal fails t for an answer that hides a server fault, or a refusal of input that does not say which
// field is wrong.
func checkRefusal(t *testing.T, method string, err error) {
	t.Helper()
	st := status.Convert(err)
	switch st.Code() {
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
		t.Fatalf("%s answered %s: %s", method, st.Code(), st.Message())
	case codes.InvalidArgument:
		for _, d := range st.Details() {
			if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 && br.GetFieldViolations()[0].GetField() != "" {
				return
			}
		}
		t.Fatalf("%s refused the input without naming the field: %s", method, st.Message())
	}
}
