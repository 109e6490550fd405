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

// sessionKeyFile holds the gateway's GATEWAY_SESSION_KEY under DATA_DIR: generated on the first start, read on
// every later one, so that a restart of the dev server keeps the dashboard's sessions like a production restart.
const sessionKeyFile = "gateway-session.key"

// sessionKey returns the dev server's session key, creating it if DATA_DIR has none yet.
func sessionKey(dataDir string) (string, error) {
	path := filepath.Join(dataDir, sessionKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("session key %s: %w", path, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("session key: %w", err)
	}
	key := base64.StdEncoding.EncodeToString(raw)
	// O_EXCL: two dev servers started at once on one DATA_DIR must not end up with two keys.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return sessionKey(dataDir)
	}
	if err != nil {
		return "", fmt.Errorf("session key %s: %w", path, err)
	}
	if _, err := f.WriteString(key + "\n"); err != nil {
		_ = f.Close()
		return "", fmt.Errorf("session key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("session key %s: %w", path, err)
	}
	return key, nil
}
