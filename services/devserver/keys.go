package devserver

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The keys the dev server makes for itself under DATA_DIR when the environment supplies none: generated on the
// first start, read on every later one, so that a restart keeps what the last run sealed — like a production
// restart with its keys from a Secret.
const (
	// sessionKeyFile holds the gateway's GATEWAY_SESSION_KEY (the dashboard's sessions).
	sessionKeyFile = "gateway-session.key"
	// secretsKeyFile holds the webhook service's WEBHOOK_SECRETS_KEY (signing secrets, header values).
	secretsKeyFile = "webhook-secrets.key"
	// natsStoreKeyFile holds the embedded NATS server's store key (JetStream encryption at rest).
	natsStoreKeyFile = "nats-store.key"
)

// dataDirKey returns the key kept in DATA_DIR under name (base64 of 32 random bytes), creating it if there is none
// yet. It is readable only by its owner.
func dataDirKey(dataDir, name string) (string, error) {
	path := filepath.Join(dataDir, name)
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("key %s: %w", path, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("key %s: %w", path, err)
	}
	key := base64.StdEncoding.EncodeToString(raw)
	// O_EXCL: two dev servers started at once on one DATA_DIR must not end up with two keys.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return dataDirKey(dataDir, name)
	}
	if err != nil {
		return "", fmt.Errorf("key %s: %w", path, err)
	}
	if _, err := f.WriteString(key + "\n"); err != nil {
		_ = f.Close()
		return "", fmt.Errorf("key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("key %s: %w", path, err)
	}
	return key, nil
}
