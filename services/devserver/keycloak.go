package devserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// keycloak is the real Keycloak server, run as a child process by scripts/keycloak.sh so that `make run` needs no
// separate step. It is stopped with the dev server, in its own process group so the JVM goes too.
type keycloak struct {
	cmd  *exec.Cmd
	done chan error
	log  *slog.Logger
}

func startKeycloak(ctx context.Context, cfg Config, log *slog.Logger) (*keycloak, error) {
	if _, err := os.Stat(cfg.KeycloakScript); err != nil {
		return nil, fmt.Errorf("KEYCLOAK_SCRIPT %s: %w (run from the repository root, or set KEYCLOAK_URL to an external Keycloak)", cfg.KeycloakScript, err)
	}
	cmd := exec.Command(cfg.KeycloakScript, "start")
	cmd.Env = append(os.Environ(),
		"KEYCLOAK_PORT="+fmt.Sprint(cfg.KeycloakPort),
		"KEYCLOAK_MGMT_PORT="+fmt.Sprint(cfg.KeycloakMgmtPort),
		"KEYCLOAK_DATA_DIR="+cfg.DataDir+"/keycloak",
	)
	logFile, err := os.OpenFile(cfg.DataDir+"/keycloak.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("keycloak log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting Keycloak: %w", err)
	}
	k := &keycloak{cmd: cmd, done: make(chan error, 1), log: log}
	go func() { k.done <- cmd.Wait(); logFile.Close() }()
	log.Info("starting Keycloak (first start takes about a minute)", "log", cfg.DataDir+"/keycloak.log")

	ready := fmt.Sprintf("http://127.0.0.1:%d/health/ready", cfg.KeycloakMgmtPort)
	deadline := time.Now().Add(cfg.KeycloakStartTimeout)
	for {
		select {
		case err := <-k.done:
			return nil, fmt.Errorf("Keycloak exited during start-up (%v); see %s/keycloak.log", err, cfg.DataDir)
		case <-ctx.Done():
			k.stop()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
		if resp, err := http.Get(ready); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return k, nil
			}
		}
		if time.Now().After(deadline) {
			k.stop()
			return nil, fmt.Errorf("Keycloak not ready after %s; see %s/keycloak.log", cfg.KeycloakStartTimeout, cfg.DataDir)
		}
	}
}

// stop ends the Keycloak process group: SIGTERM, then SIGKILL after 30 s.
func (k *keycloak) stop() {
	if k == nil || k.cmd.Process == nil {
		return
	}
	pgid := -k.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(30 * time.Second):
		k.log.Warn("Keycloak did not stop in 30s; killing it")
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-k.done
	}
}

// exited reports a Keycloak that died while the stack runs.
func (k *keycloak) exited() <-chan error { return k.done }

var errKeycloakExited = errors.New("Keycloak exited")
