// Package testinfra gives integration tests real infrastructure: an embedded
// NATS with JetStream, an embedded FerretDB (MongoDB wire protocol on
// SQLite), and the address of the real Keycloak started by `make test`.
// Import it only from _test.go files. Like pkg/devinfra it is a module of
// its own, apart from the runtime code in pkg.
//
//	func TestCreateCase(t *testing.T) {
//		nc := testinfra.NATS(t)
//		uri, db := testinfra.Mongo(t)
//		svc := startService(t, nc.URL(), uri, db)
//		...
//	}
//
// # One harness for every service
//
// The services' test packages share these helpers and keep only what is
// their own (configuration, fakes, domain assertions):
//
//   - servers: NATS, StartRestartableNATS, Mongo, ConnectMongo, FreePort;
//   - services in the test's process: StartServices, Logger, LogBuffer;
//   - services as OS processes: Build, StartProcess;
//   - clients: Dial and Bearer for gRPC, JetStream and WaitStream for NATS,
//     Metric and Histogram for /metrics, Ready for health endpoints;
//   - Keycloak: KeycloakURL, ClientToken, CachedClientToken, PasswordLogin;
//   - Recorder, an HTTP endpoint (a webhook receiver) that keeps what it got;
//   - Eventually.
//
// # One server per test, not per package
//
// Every call starts a fresh server owned by the calling test: data lives in
// t.TempDir, the port is random, and t.Cleanup shuts the server down. There
// is no shared instance, no TestMain and no package state, so tests may run
// with t.Parallel and never see each other's data.
//
// That is affordable because starting is cheap. Measured on the 2-core dev
// box (go test -bench in pkg/devinfra, no -race):
//
//	FerretDB start (listener + SQLite backend + ping)  ~1.2 ms
//	FerretDB start + connect + first insert             ~25 ms (creating the SQLite files dominates)
//	NATS start with JetStream on file storage           ~26 ms
//	FindOneAndUpdate of one document                    ~1-2.5 ms
//	FindOne by _id                                      ~0.5 ms
//
// A per-package FerretDB with a fresh database per test would save only the
// ~1 ms start: a new database costs the same file creation as a new server.
//
// Stopping FerretDB waits up to 3s for clients that are still connected, so
// let anything that connects to the URI register its Disconnect with
// t.Cleanup after calling Mongo (cleanups run last-in, first-out).
//
// # What FerretDB does differently from MongoDB
//
// pkg/devinfra/ferretdb_compat_test.go pins what the services may rely on
// (run it with -v to print each limitation). In short, avoid:
//
//   - read-modify-write atomicity: FindOneAndUpdate/UpdateOne run as
//     "query, then replace by _id", so a {_id, version} compare-and-set can
//     have several winners and concurrent $inc/$push lose writes. Serialise
//     writers per document, or guard with an insert into a unique index,
//     which is atomic;
//   - mongo.IsDuplicateKeyError on updates: an update that breaks a unique
//     index fails with InternalError "UNIQUE constraint failed" (inserts and
//     upsert-inserts do report a duplicate key);
//   - $pull with a field condition ({$pull: {outbox: {id: x}}} removes
//     nothing; pull the exact sub-document or $set the array), positional
//     $ and arrayFilters updates, $elemMatch on sub-document fields (an error,
//     or silently no match);
//   - $group with more than one accumulator (only the first is computed),
//     accumulators other than $sum/$count, and the stages $lookup, $facet,
//     $replaceRoot and friends (supported: $match $group $sort $limit $skip
//     $project $unwind $addFields/$set $unset $count);
//   - transactions, change streams, collation, TTL and partial indexes.
//
// Also different: missing fields never collide in a unique index, and
// documents over 16 MiB are accepted.
package testinfra
