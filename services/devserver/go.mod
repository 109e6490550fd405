module github.com/casekeeper/core/services/devserver

go 1.26.0

require (
	github.com/casekeeper/core/pkg v0.0.0
	github.com/casekeeper/core/proto v0.0.0
	github.com/casekeeper/core/services/case v0.0.0
)

replace (
	github.com/casekeeper/core/pkg => ../../pkg
	github.com/casekeeper/core/proto => ../../proto
	github.com/casekeeper/core/services/case => ../case
)
