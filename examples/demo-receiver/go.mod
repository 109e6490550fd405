module github.com/casekeeper/core/examples/demo-receiver

go 1.26.0
