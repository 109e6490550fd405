#!/bin/bash
# Bootstraps the MongoDB replica set and the application user. Run by the Job "mongodb-rs-init"; idempotent, so it
# is safe to run again (after scaling the StatefulSet, or to apply a new application password from the Secret).
#
#  1. wait until every member answers a ping (no credentials needed for that);
#  2. on member 0, if the set is not initiated yet: rs.initiate with member 0 alone. Only member 0 may hold data
#     when a set is initiated, and every member created its own root user on first start (docker-entrypoint);
#  3. through the replica set: add the missing members (each then copies everything from the primary, its own
#     root user included), and create or update the application user.
set -euo pipefail

: "${MONGODB_REPLICAS:?}" "${MONGODB_REPLSET:?}" "${MONGODB_DATABASE:?}"
: "${MONGO_INITDB_ROOT_USERNAME:?}" "${MONGO_INITDB_ROOT_PASSWORD:?}"
: "${MONGODB_APP_USERNAME:?}" "${MONGODB_APP_PASSWORD:?}"
statefulset=${MONGODB_STATEFULSET:-mongodb}
service=${MONGODB_SERVICE:-mongodb}

members=()
for ((i = 0; i < MONGODB_REPLICAS; i++)); do
  members+=("${statefulset}-${i}.${service}:27017")
done
RS_MEMBERS=$(IFS=,; echo "${members[*]}")
export RS_MEMBERS

# Credentials go in as arguments to mongosh, never inside a URI (no escaping of special characters needed).
auth=(--quiet --username "$MONGO_INITDB_ROOT_USERNAME" --password "$MONGO_INITDB_ROOT_PASSWORD"
  --authenticationDatabase admin)

for member in "${members[@]}"; do
  until mongosh --quiet "mongodb://${member}/?directConnection=true&serverSelectionTimeoutMS=5000" \
    --eval 'db.adminCommand({ping: 1}).ok' >/dev/null 2>&1; do
    echo "waiting for ${member}"
    sleep 5
  done
done
echo "all ${MONGODB_REPLICAS} members answer"

mongosh "${auth[@]}" "mongodb://${members[0]}/admin?directConnection=true" --eval '
  try {
    rs.status();
    print("replica set already initiated");
  } catch (e) {
    if (e.codeName !== "NotYetInitialized") { throw e; }
    const first = process.env.RS_MEMBERS.split(",")[0];
    rs.initiate({_id: process.env.MONGODB_REPLSET, members: [{_id: 0, host: first}]});
    print("replica set initiated with " + first);
  }'

mongosh "${auth[@]}" "mongodb://${RS_MEMBERS}/admin?replicaSet=${MONGODB_REPLSET}&serverSelectionTimeoutMS=60000" --eval '
  const wanted = process.env.RS_MEMBERS.split(",");
  for (const host of wanted) {
    // One reconfiguration at a time: the previous one must be committed first, so retry for a while.
    for (let attempt = 1; ; attempt++) {
      if (rs.conf().members.some((m) => m.host === host)) { break; }
      try {
        rs.add({host: host});
        print("added " + host);
        break;
      } catch (e) {
        if (attempt >= 60) { throw e; }
        print("retrying rs.add(" + host + "): " + e.message);
        sleep(2000);
      }
    }
  }
  const admin = db.getSiblingDB("admin");
  const user = process.env.MONGODB_APP_USERNAME;
  const spec = {
    pwd: process.env.MONGODB_APP_PASSWORD,
    // Read and write the data, and manage its indexes and collections; nothing outside that database.
    roles: [{role: "readWrite", db: process.env.MONGODB_DATABASE}, {role: "dbAdmin", db: process.env.MONGODB_DATABASE}],
  };
  if (admin.getUser(user)) {
    admin.updateUser(user, spec);
    print("updated user " + user);
  } else {
    admin.createUser(Object.assign({user: user}, spec));
    print("created user " + user);
  }'
echo "replica set ${MONGODB_REPLSET} ready: ${RS_MEMBERS}"
