package config_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/casekeeper/core/pkg/config"
)

type sample struct {
	Addr     string        `env:"SAMPLE_ADDR" envDefault:"127.0.0.1:1"`
	Timeout  time.Duration `env:"SAMPLE_TIMEOUT" envDefault:"5s"`
	Keycloak config.Keycloak
}

func (s *sample) Validate() error {
	var c config.Check
	c.Require("KEYCLOAK_CLIENT_ID", s.Keycloak.ClientID)
	c.That(s.Timeout > 0, "SAMPLE_TIMEOUT", "must be positive")
	return c.Err()
}

func TestLoadNamesTheVariableAtFault(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"SAMPLE_TIMEOUT": "soon", "KEYCLOAK_CLIENT_ID": "x"}, []string{"SAMPLE_TIMEOUT"}},
		{map[string]string{}, []string{"KEYCLOAK_CLIENT_ID must be set"}},
		{map[string]string{"SAMPLE_TIMEOUT": "-1s"}, []string{"KEYCLOAK_CLIENT_ID must be set", "SAMPLE_TIMEOUT must be positive"}},
	} {
		_, err := config.Load[sample](tc.env)
		if err == nil {
			t.Fatalf("%v: no error", tc.env)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not say %q", tc.env, err, w)
			}
		}
	}
	cfg, err := config.Load[sample](map[string]string{"KEYCLOAK_CLIENT_ID": "case"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:1" || cfg.Timeout != 5*time.Second || cfg.Keycloak.Realm != "casekeeper" {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
}

func TestSecretsNeverReachTheLog(t *testing.T) {
	cfg, err := config.Load[sample](map[string]string{"KEYCLOAK_CLIENT_ID": "case", "KEYCLOAK_CLIENT_SECRET": "hunter2hunter2"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Keycloak.ClientSecret.Reveal() != "hunter2hunter2" {
		t.Fatal("the secret was not read")
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("configuration", "config", cfg, "secret", cfg.Keycloak.ClientSecret)
	if strings.Contains(buf.String(), "hunter2") {
		t.Fatalf("secret in the log: %s", buf.String())
	}
	if !strings.Contains(buf.String(), "***") {
		t.Fatalf("secret not shown masked: %s", buf.String())
	}
}
