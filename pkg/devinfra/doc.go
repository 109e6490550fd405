// Package devinfra runs the infrastructure Case-keeper depends on — NATS with
// JetStream and FerretDB on SQLite — inside the current process.
//
// The dev server uses it so a developer needs no Docker, and the integration
// tests use it (through pkg/testinfra) so they exercise the real wire protocols
// instead of fakes. Production never imports this package: there the services
// talk to external NATS and MongoDB-compatible servers through the same URLs.
// It is a module of its own, so that pkg, which the services run on, does not
// require FerretDB or nats-server.
//
// Both servers bind to 127.0.0.1 by default, support a random port, keep their
// data in a caller-chosen directory (so restarting on the same directory keeps
// streams and documents), stay quiet unless given a logger, and wait — with a
// bound — until they accept connections before returning.
package devinfra
