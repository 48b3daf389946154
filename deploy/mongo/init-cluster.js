// init-cluster.js: one-shot setup of evp's sharded MongoDB cluster, run by the mongo-init
// service of deploy/docker-compose.yml:
//
//   mongosh --nodb --quiet --file /scripts/init-cluster.js
//
// 1. initiates the config server replica set and each shard's replica set,
// 2. adds each shard to the cluster through mongos,
// 3. enables sharding on MONGO_DATABASE and shards its events collection on hashed userId.
//
// Every step checks what is already there first, so running it again (on every
// `docker compose up`, or after adding a shard to SHARDS) changes only what is missing.
// The host names and ports are the Compose services'; keep them in step with the file.

const CONFIG_SERVER = { id: "cfg", host: "mongo-config:27019", configsvr: true };
const SHARDS = [
  { id: "shard1", host: "mongo-shard1:27018" },
  { id: "shard2", host: "mongo-shard2:27018" },
];
const MONGOS = "mongos:27017";

const DATABASE = process.env.MONGO_DATABASE || "event_processor";
const COLLECTION = "events";
const SHARD_KEY = { userId: "hashed" };

const WAIT_MS = 180 * 1000;

function log(msg) {
  print(`mongo-init: ${msg}`);
}

// command runs an admin command and returns its reply; a failed command gives
// { ok: 0, code, codeName, errmsg } whether the shell throws or returns it.
function command(db, cmd) {
  try {
    return db.runCommand(cmd);
  } catch (e) {
    return { ok: 0, code: e.code, codeName: e.codeName, errmsg: e.message };
  }
}

// waitFor calls fn until it returns a truthy value or WAIT_MS has passed.
function waitFor(what, fn) {
  const deadline = Date.now() + WAIT_MS;
  let last = "";
  for (;;) {
    try {
      const v = fn();
      if (v) return v;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > deadline) {
      throw new Error(`gave up waiting for ${what} after ${WAIT_MS / 1000} s ${last ? "(" + last + ")" : ""}`);
    }
    sleep(1000);
  }
}

// admin connects to one server directly and returns its admin database.
function admin(host) {
  return waitFor(`${host} to answer`, () => {
    const db = connect(`mongodb://${host}/admin?directConnection=true&serverSelectionTimeoutMS=3000`);
    return command(db, { ping: 1 }).ok === 1 ? db : null;
  });
}

function initiateReplicaSet(rs) {
  const db = admin(rs.host);
  const status = command(db, { replSetGetStatus: 1 });
  if (status.ok === 1) {
    log(`replica set ${rs.id}: already initiated`);
  } else if (status.codeName === "NotYetInitialized" || status.code === 94) {
    const config = { _id: rs.id, members: [{ _id: 0, host: rs.host }] };
    if (rs.configsvr) config.configsvr = true;
    const res = command(db, { replSetInitiate: config });
    if (res.ok !== 1 && res.codeName !== "AlreadyInitialized") {
      throw new Error(`replSetInitiate ${rs.id}: ${res.errmsg}`);
    }
    log(`replica set ${rs.id}: initiated`);
  } else {
    throw new Error(`replSetGetStatus ${rs.id}: ${status.errmsg}`);
  }
  waitFor(`a primary in ${rs.id}`, () => command(db, { hello: 1 }).isWritablePrimary === true);
}

function addShards(router) {
  const present = () => {
    const res = command(router, { listShards: 1 });
    return res.ok === 1 ? res.shards.map((s) => s._id) : null;
  };
  const known = waitFor("mongos to reach the config servers", present);
  for (const shard of SHARDS) {
    if (known.includes(shard.id)) {
      log(`shard ${shard.id}: already added`);
      continue;
    }
    waitFor(`shard ${shard.id} to be added`, () => {
      const res = command(router, { addShard: `${shard.id}/${shard.host}`, name: shard.id });
      if (res.ok !== 1) log(`addShard ${shard.id}: ${res.errmsg}; retrying`);
      return res.ok === 1;
    });
    log(`shard ${shard.id}: added`);
  }
}

function shardEvents(router) {
  const ns = `${DATABASE}.${COLLECTION}`;
  const existing = router.getSiblingDB("config").collections.findOne({ _id: ns });
  if (existing && existing.key) {
    if (JSON.stringify(existing.key) !== JSON.stringify(SHARD_KEY)) {
      throw new Error(`${ns} is sharded on ${JSON.stringify(existing.key)}, not ${JSON.stringify(SHARD_KEY)}`);
    }
    log(`${ns}: already sharded on ${JSON.stringify(SHARD_KEY)}`);
    return;
  }
  const enabled = command(router, { enableSharding: DATABASE });
  if (enabled.ok !== 1 && enabled.codeName !== "AlreadyInitialized") {
    throw new Error(`enableSharding ${DATABASE}: ${enabled.errmsg}`);
  }
  const res = command(router, { shardCollection: ns, key: SHARD_KEY });
  if (res.ok !== 1) {
    throw new Error(`shardCollection ${ns}: ${res.errmsg}`);
  }
  log(`${ns}: sharded on ${JSON.stringify(SHARD_KEY)}`);
}

initiateReplicaSet(CONFIG_SERVER);
for (const shard of SHARDS) {
  initiateReplicaSet(shard);
}
const router = admin(MONGOS);
addShards(router);
shardEvents(router);

const shards = command(router, { listShards: 1 }).shards.map((s) => `${s._id}=${s.host}`);
log(`done: shards ${shards.join(", ")}; ${DATABASE}.${COLLECTION} sharded on hashed userId`);
