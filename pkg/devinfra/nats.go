package devinfra

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATSOptions configures StartNATS.
type NATSOptions struct {
	// StoreDir is where JetStream keeps streams. Required: without it
	// nats-server would silently fall back to a directory under os.TempDir,
	// and streams would not survive where the caller expects.
	StoreDir string

	// Host is the interface to listen on. Empty means 127.0.0.1, so a dev
	// machine never exposes its broker to the network by accident.
	Host string

	// Port to listen on. 0 or -1 picks a random free port (nats-server itself
	// would read 0 as its default 4222, which tests must never collide on).
	Port int

	// ServerName names the server in logs and JetStream metadata.
	// Empty means "casekeeper-dev".
	ServerName string

	// Logger receives the server's warnings and errors; its notices are
	// logged at debug level. Nil silences the server.
	Logger *slog.Logger

	// ReadyTimeout bounds the wait until the server accepts connections.
	// Zero means 10s.
	ReadyTimeout time.Duration

	// EncryptionKey, when set, encrypts JetStream's store at rest (AES-GCM,
	// nats-server's store cipher): message bodies and metadata on disk are
	// unreadable without it. A store written without a key is encrypted on
	// the first start with one.
	EncryptionKey string
	// PreviousEncryptionKey is the key being rotated out: the server reads a
	// store sealed with it and seals it again with EncryptionKey.
	PreviousEncryptionKey string
}

const (
	defaultNATSServerName   = "casekeeper-dev"
	defaultNATSReadyTimeout = 10 * time.Second
)

func (o NATSOptions) validate() error {
	var errs []error
	if o.StoreDir == "" {
		errs = append(errs, errors.New("missing StoreDir"))
	}
	if o.Port < -1 || o.Port > 65535 {
		errs = append(errs, fmt.Errorf("invalid Port %d: want -1 to 65535", o.Port))
	}
	if o.PreviousEncryptionKey != "" && o.EncryptionKey == "" {
		errs = append(errs, errors.New("PreviousEncryptionKey without EncryptionKey"))
	}
	if o.ReadyTimeout < 0 {
		errs = append(errs, fmt.Errorf("invalid ReadyTimeout %s: negative", o.ReadyTimeout))
	}
	return errors.Join(errs...)
}

// NATSServer is an in-process nats-server with JetStream enabled.
type NATSServer struct {
	srv *server.Server
}

// StartNATS starts an embedded nats-server with JetStream on file storage and
// returns once it accepts client connections, or fails within
// opts.ReadyTimeout. It never installs signal handlers: the host process owns
// them.
func StartNATS(opts NATSOptions) (*NATSServer, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("nats: invalid options: %w", err)
	}
	host := cmp.Or(opts.Host, "127.0.0.1")
	port := opts.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))

	// nats-server reports a taken port only as a fatal log line and then never
	// becomes ready; probing first turns the common case into an immediate
	// error that names the address.
	if port > 0 {
		if err := probeListen(addr); err != nil {
			return nil, fmt.Errorf("nats: cannot listen on %s: %w", addr, err)
		}
	}

	logger := newNATSLogger(cmp.Or(opts.Logger, quietLogger()))

	sopts := &server.Options{
		ServerName: cmp.Or(opts.ServerName, defaultNATSServerName),
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		NoSigs:     true,
	}
	if opts.EncryptionKey != "" {
		sopts.JetStreamKey, sopts.JetStreamOldKey, sopts.JetStreamCipher = opts.EncryptionKey, opts.PreviousEncryptionKey, server.AES
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("nats: configure server on %s: %w", addr, err)
	}
	// Debug and trace stay off: they log every protocol message.
	srv.SetLoggerV2(logger, false, false, false)

	go srv.Start()

	if err := waitNATSReady(srv, logger, cmp.Or(opts.ReadyTimeout, defaultNATSReadyTimeout)); err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("nats: start on %s: %w", addr, err)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("nats: start on %s: JetStream is not enabled", addr)
	}
	return &NATSServer{srv: srv}, nil
}

// waitNATSReady polls in short slices so a fatal start-up error surfaces at
// once instead of after the whole timeout.
func waitNATSReady(srv *server.Server, logger *natsLogger, timeout time.Duration) error {
	const slice = 50 * time.Millisecond
	deadline := time.Now().Add(timeout)
	for {
		if srv.ReadyForConnections(slice) {
			return nil
		}
		select {
		case msg := <-logger.fatal:
			return errors.New(msg)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready for connections after %s", timeout)
		}
	}
}

// URL is the client URL, e.g. nats://127.0.0.1:4222, with the actual port
// when a random one was requested.
func (s *NATSServer) URL() string { return s.srv.ClientURL() }

// Shutdown stops the server and waits until it has flushed JetStream state to
// disk, so a new server on the same StoreDir sees every acknowledged message.
// It is safe to call more than once.
func (s *NATSServer) Shutdown() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

// probeListen reports whether addr can be bound right now.
func probeListen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ln.Close()
}
