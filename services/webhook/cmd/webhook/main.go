// Command webhook runs the webhook delivery service.
package main

import (
	"github.com/casekeeper/core/pkg/lifecycle"
	webhooksvc "github.com/casekeeper/core/services/webhook"
)

func main() { lifecycle.Main("webhook", webhooksvc.New) }
