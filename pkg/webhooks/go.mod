module github.com/casekeeper/core/pkg/webhooks

go 1.26.0
