package webhooksvc

import (
	"strings"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/config"
)

func TestConfigDefaultsAndErrors(t *testing.T) {
	cfg, err := config.Load[Config](map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.RetrySchedule) != 10 || cfg.RetrySchedule[9] != 24*time.Hour || cfg.RequestTimeout != 15*time.Second ||
		cfg.DisableAfter != 120*time.Hour || cfg.GRPCAddr != "127.0.0.1:9092" || cfg.AllowLoopbackHTTP {
		t.Fatalf("defaults %+v", cfg)
	}
	cfg, err = config.Load[Config](map[string]string{"WEBHOOK_RETRY_SCHEDULE": "0s,1s,2s"})
	if err != nil || len(cfg.RetrySchedule) != 3 || cfg.RetrySchedule[2] != 2*time.Second {
		t.Fatalf("schedule %v %v", cfg.RetrySchedule, err)
	}
	for variable, value := range map[string]string{
		"WEBHOOK_RETRY_SCHEDULE": "1s,-2s",
		"GATEWAY_PUBLIC_URL":     "ftp://x",
		"WEBHOOK_FANOUT_BATCH":   "0",
	} {
		_, err := config.Load[Config](map[string]string{variable: value})
		if err == nil || !strings.Contains(err.Error(), variable) {
			t.Errorf("%s=%s: error %v does not name the variable", variable, value, err)
		}
	}
}
