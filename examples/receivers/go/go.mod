module github.com/casekeeper/core/examples/receivers/go

go 1.26.0

require github.com/casekeeper/core/pkg/webhooks v0.0.0

replace github.com/casekeeper/core/pkg/webhooks => ../../../pkg/webhooks
