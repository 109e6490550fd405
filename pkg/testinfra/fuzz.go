package testinfra

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
)

// FuzzService sends every unary method of service, on conn, requests decoded from arbitrary bytes, each call in a
// context from callCtx (the caller's credentials). Whatever the input: no internal error, and a refusal for bad
// input is INVALID_ARGUMENT with the field named in its details. Seeds are an empty request and each of seeds for
// every method; `go test` runs them, `go test -fuzz` explores from them.
func FuzzService(f *testing.F, conn *grpc.ClientConn, service protoreflect.ServiceDescriptor, callCtx func() context.Context, seeds ...proto.Message) {
	f.Helper()
	methods := service.Methods()
	for i := range methods.Len() {
		f.Add(uint8(i), []byte{})
		for _, s := range seeds {
			b, err := proto.Marshal(s)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(uint8(i), b)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		m := methods.Get(int(which) % methods.Len())
		if m.IsStreamingServer() || m.IsStreamingClient() {
			return
		}
		req, resp := newMessage(t, m.Input()), newMessage(t, m.Output())
		if err := proto.Unmarshal(payload, req); err != nil {
			return // not a request at all: the transport refuses it before the service sees it
		}
		ctx, cancel := context.WithTimeout(callCtx(), 10*time.Second)
		defer cancel()
		err := conn.Invoke(ctx, "/"+string(service.FullName())+"/"+string(m.Name()), req, resp, grpc.WaitForReady(true))
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
