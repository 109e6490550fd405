module github.com/casekeeper/core/services/devserver

go 1.26.0

require (
	github.com/casekeeper/core/pkg v0.0.0
	github.com/casekeeper/core/proto v0.0.0
	github.com/casekeeper/core/services/case v0.0.0
	github.com/casekeeper/core/services/gateway v0.0.0
	github.com/casekeeper/core/services/webhook v0.0.0
)

require (
	github.com/Nerzal/gocloak/v13 v13.9.0 // indirect
	github.com/go-resty/resty/v2 v2.7.0 // indirect
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/nats-io/nats.go v1.55.0 // indirect
	github.com/nats-io/nkeys v0.4.16 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	github.com/opentracing/opentracing-go v1.2.0 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/segmentio/ksuid v1.0.4 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/net v0.61.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20261019180522-ce908d29299b // indirect
	google.golang.org/grpc v1.85.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

replace (
	github.com/casekeeper/core/pkg => ../../pkg
	github.com/casekeeper/core/proto => ../../proto
	github.com/casekeeper/core/services/case => ../case
	github.com/casekeeper/core/services/gateway => ../gateway
	github.com/casekeeper/core/services/webhook => ../webhook
)
