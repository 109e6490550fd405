// Command protoc-gen-openapi31 writes the OpenAPI 3.1 description of the HTTP/JSON API (openapi/casekeeper.openapi.json).
//
// It is a protoc plugin that hands its request to protoc-gen-openapiv2 (grpc-gateway's generator, pinned in
// tools/go.mod), which knows how the google.api.http annotations map fields to paths, queries and bodies, then
// converts that Swagger 2.0 answer to OpenAPI 3.1 and completes it with what the protos cannot say: the bearer scheme,
// the SSE route, the statuses and headers the gateway adds, and examples. The protos stay the source of truth for
// every JSON route; the hand-written parts are in additions.json.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

// outputName is where buf writes the document, relative to the plugin's out directory.
const outputName = "casekeeper.openapi.json"

// openapiv2Options fix how protoc-gen-openapiv2 describes the API: one merged document, proto field names (the
// gateway marshals with UseProtoNames) and fully qualified definition names, which the conversion maps back to
// messages.
const openapiv2Options = "allow_merge=true,merge_file_name=casekeeper,json_names_for_fields=false,output_format=json,openapi_naming_strategy=fqn"

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "protoc-gen-openapi31:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	raw, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	req := &pluginpb.CodeGeneratorRequest{}
	if err := proto.Unmarshal(raw, req); err != nil {
		return fmt.Errorf("reading the request: %w", err)
	}
	files, err := protodesc.NewFiles(&descriptorpb.FileDescriptorSet{File: req.GetProtoFile()})
	if err != nil {
		return fmt.Errorf("reading the descriptors: %w", err)
	}
	swagger, err := openapiv2(req)
	if err != nil {
		return err
	}
	doc, err := convert(swagger, files)
	if err != nil {
		return fmt.Errorf("converting to OpenAPI 3.1: %w", err)
	}
	if err := complete(doc); err != nil {
		return fmt.Errorf("completing the document: %w", err)
	}
	body, err := encode(doc)
	if err != nil {
		return err
	}
	resp := &pluginpb.CodeGeneratorResponse{
		SupportedFeatures: proto.Uint64(uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL)),
		File:              []*pluginpb.CodeGeneratorResponse_File{{Name: proto.String(outputName), Content: proto.String(string(body))}},
	}
	b, err := proto.Marshal(resp)
	if err != nil {
		return err
	}
	_, err = out.Write(b)
	return err
}

// openapiv2 runs protoc-gen-openapiv2 (from PATH, as buf finds the other plugins) on the same request and returns
// the Swagger 2.0 document it wrote.
func openapiv2(req *pluginpb.CodeGeneratorRequest) (map[string]any, error) {
	sub := proto.Clone(req).(*pluginpb.CodeGeneratorRequest)
	sub.Parameter = proto.String(openapiv2Options)
	in, err := proto.Marshal(sub)
	if err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("protoc-gen-openapiv2")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(in), &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("protoc-gen-openapiv2: %w: %s", err, stderr.Bytes())
	}
	resp := &pluginpb.CodeGeneratorResponse{}
	if err := proto.Unmarshal(stdout.Bytes(), resp); err != nil {
		return nil, fmt.Errorf("protoc-gen-openapiv2's answer: %w", err)
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("protoc-gen-openapiv2: %s", resp.GetError())
	}
	for _, f := range resp.GetFile() {
		if f.GetName() == "casekeeper.swagger.json" {
			var doc map[string]any
			if err := json.Unmarshal([]byte(f.GetContent()), &doc); err != nil {
				return nil, fmt.Errorf("protoc-gen-openapiv2's document: %w", err)
			}
			return doc, nil
		}
	}
	return nil, fmt.Errorf("protoc-gen-openapiv2 wrote no casekeeper.swagger.json")
}

// encode writes the document indented, with keys sorted (encoding/json sorts map keys), so that a regeneration
// from the same protos is byte for byte the same and proto-check can compare it.
func encode(doc map[string]any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
