package webhooksvc

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/config"
)

// key is a WEBHOOK_SECRETS_KEY for tests.
const key = "jqZaqvw+byH49FnYiT7volhd6gjk2OArtTPA1wTtzcM="

func with(env map[string]string) map[string]string {
	out := map[string]string{"WEBHOOK_SECRETS_KEY": key}
	for k, v := range env {
		out[k] = v
	}
	return out
}

func TestConfigDefaultsAndErrors(t *testing.T) {
	cfg, err := config.Load[Config](with(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.RetrySchedule) != 10 || cfg.RetrySchedule[9] != 24*time.Hour || cfg.RequestTimeout != 15*time.Second ||
		cfg.DisableAfter != 120*time.Hour || cfg.GRPCAddr != "127.0.0.1:9092" || cfg.AllowLoopbackHTTP {
		t.Fatalf("defaults %+v", cfg)
	}
	if cfg.JQWorkers != 2 || cfg.JQWorkerMemoryMiB != 64 {
		t.Fatalf("jq worker defaults %d, %d MiB", cfg.JQWorkers, cfg.JQWorkerMemoryMiB)
	}
	if cfg.DeliveryRetention != 720*time.Hour || cfg.RetentionInterval != time.Hour {
		t.Fatalf("retention defaults %s every %s", cfg.DeliveryRetention, cfg.RetentionInterval)
	}
	cfg, err = config.Load[Config](with(map[string]string{"WEBHOOK_RETRY_SCHEDULE": "0s,1s,2s"}))
	if err != nil || len(cfg.RetrySchedule) != 3 || cfg.RetrySchedule[2] != 2*time.Second {
		t.Fatalf("schedule %v %v", cfg.RetrySchedule, err)
	}
	for variable, value := range map[string]string{
		"WEBHOOK_RETRY_SCHEDULE":       "1s,-2s",
		"GATEWAY_PUBLIC_URL":           "ftp://x",
		"WEBHOOK_FANOUT_BATCH":         "0",
		"WEBHOOK_SECRETS_KEY":          "c2hvcnQ=",
		"WEBHOOK_SECRETS_OLD_KEYS":     "not base64",
		"WEBHOOK_JQ_WORKERS":           "-1",
		"WEBHOOK_JQ_WORKER_MEMORY_MIB": "1",
		"WEBHOOK_DELIVERY_RETENTION":   "10m",
		"WEBHOOK_RETENTION_INTERVAL":   "0s",
	} {
		_, err := config.Load[Config](with(map[string]string{variable: value}))
		if err == nil || !strings.Contains(err.Error(), variable) {
			t.Errorf("%s=%s: error %v does not name the variable", variable, value, err)
		}
	}
	// A retry waiting longer than the delivery queue safely keeps its schedule would be aged out.
	if _, err := config.Load[Config](with(map[string]string{"WEBHOOK_RETRY_SCHEDULE": "0s,1h,150h"})); err == nil ||
		!strings.Contains(err.Error(), "WEBHOOK_RETRY_SCHEDULE") {
		t.Errorf("a retry wait of 150h (+20%% jitter) beyond the queue's bound: %v", err)
	}
	if _, err := config.Load[Config](with(map[string]string{"WEBHOOK_RETRY_SCHEDULE": "0s,1h,120h"})); err != nil {
		t.Errorf("a retry wait of 120h (+20%% jitter: 144h, less than 168h): %v", err)
	}
	// Go durations have no days: a retention written as "30d" stops the start, naming the variable.
	if _, err := config.Load[Config](with(map[string]string{"WEBHOOK_DELIVERY_RETENTION": "30d"})); err == nil ||
		!strings.Contains(err.Error(), "WEBHOOK_DELIVERY_RETENTION") {
		t.Errorf("WEBHOOK_DELIVERY_RETENTION=30d: %v", err)
	}
}

// Without a key there is nothing to seal secrets with: the service does not start.
func TestConfigRequiresSecretsKey(t *testing.T) {
	_, err := config.Load[Config](map[string]string{})
	if err == nil || !strings.Contains(err.Error(), "WEBHOOK_SECRETS_KEY must be set") {
		t.Fatalf("without WEBHOOK_SECRETS_KEY: %v", err)
	}
	if strings.Contains(func() string { c, _ := config.Load[Config](with(nil)); return fmt.Sprintf("%v", c) }(), key) {
		t.Fatal("the key shows when the configuration is printed")
	}
}
