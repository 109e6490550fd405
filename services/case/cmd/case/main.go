// Command case runs the case service.
package main

import (
	"github.com/casekeeper/core/pkg/lifecycle"
	casesvc "github.com/casekeeper/core/services/case"
)

func main() { lifecycle.Main("case", casesvc.New) }
