// Package config loads a service's configuration from environment variables into one struct, with defaults,
// validation and secrets that never reach a log.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Secret is a string that logs and prints as "***".
type Secret string

// String masks the value so that fmt and slog never show it.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "***"
}

// LogValue masks the value in structured logs.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText masks the value wherever the config is encoded (JSON logs included).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the real value, for the one place that needs it.
func (s Secret) Reveal() string { return string(s) }

// NATS locates the JetStream server.
type NATS struct {
	URL string `env:"NATS_URL" envDefault:"nats://127.0.0.1:4222"`
	// StreamReplicas is how many copies JetStream keeps of each stream: 1 on one server, 3 on a cluster.
	StreamReplicas int `env:"EVENTS_STREAM_REPLICAS" envDefault:"1"`
}

// Mongo locates the case database.
type Mongo struct {
	URI      Secret `env:"MONGODB_URI" envDefault:"mongodb://127.0.0.1:27017"`
	Database string `env:"MONGODB_DATABASE" envDefault:"casekeeper"`
}

// Keycloak locates the realm that issues and signs access tokens, and the service's own client.
type Keycloak struct {
	URL   string `env:"KEYCLOAK_URL" envDefault:"http://127.0.0.1:8180"`
	Realm string `env:"KEYCLOAK_REALM" envDefault:"casekeeper"`
	// Issuer is the iss of the realm's tokens when Keycloak's public name differs from KEYCLOAK_URL (containers,
	// Kubernetes); empty means KEYCLOAK_URL/realms/KEYCLOAK_REALM.
	Issuer       string `env:"AUTH_ISSUER"`
	Audience     string `env:"AUTH_AUDIENCE" envDefault:"casekeeper-api"`
	ClientID     string `env:"KEYCLOAK_CLIENT_ID"`
	ClientSecret Secret `env:"KEYCLOAK_CLIENT_SECRET"`
	// IntrospectTokens asks Keycloak whether a token was revoked; an answer is reused for IntrospectCache at most,
	// so a revoked token stops working within that bound.
	IntrospectTokens bool          `env:"AUTH_INTROSPECT" envDefault:"false"`
	IntrospectCache  time.Duration `env:"AUTH_INTROSPECT_CACHE" envDefault:"30s"`
}

// Validator is implemented by config structs that check more than types.
type Validator interface {
	Validate() error
}

// Load fills a T from the environment (env overrides the process environment when not nil) and validates it.
// The error names every variable that is wrong.
func Load[T any](environ map[string]string) (T, error) {
	var cfg T
	opts := env.Options{}
	if environ != nil {
		opts.Environment = environ
	}
	if err := env.ParseWithOptions(&cfg, opts); err != nil {
		return cfg, fmt.Errorf("configuration: %w", namedParseErrors(reflect.TypeOf(cfg), err))
	}
	if v, ok := any(&cfg).(Validator); ok {
		if err := v.Validate(); err != nil {
			return cfg, fmt.Errorf("configuration: %w", err)
		}
	}
	return cfg, nil
}

// Check collects validation failures, each naming its variable.
type Check struct{ errs []error }

// Require fails when the value is empty.
func (c *Check) Require(variable, value string) {
	if strings.TrimSpace(value) == "" {
		c.errs = append(c.errs, fmt.Errorf("%s must be set", variable))
	}
}

// That fails with the message when ok is false.
func (c *Check) That(ok bool, variable, format string, args ...any) {
	if !ok {
		c.errs = append(c.errs, fmt.Errorf("%s %s", variable, fmt.Sprintf(format, args...)))
	}
}

// Err is nil when every check passed.
func (c *Check) Err() error { return errors.Join(c.errs...) }

// namedParseErrors rewrites the parser's errors, which name Go struct fields, so that each names the environment
// variable the user has to fix.
func namedParseErrors(t reflect.Type, err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	vars := map[string][]string{}
	collectVars(t, vars)
	out := make([]error, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) && len(vars[pe.Name]) > 0 {
			out = append(out, fmt.Errorf("%s: cannot read it as %s: %v", strings.Join(vars[pe.Name], " or "), pe.Type, pe.Err))
			continue
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

func collectVars(t reflect.Type, vars map[string][]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("env"), ","); name != "" && name != "-" {
			vars[f.Name] = append(vars[f.Name], name)
		} else if f.Type.Kind() == reflect.Struct {
			collectVars(f.Type, vars)
		}
	}
}
