# The sync backend on workerd alone (https://github.com/cloudflare/workerd, from npm), without
# Cloudflare or wrangler: the same build/ that `wrangler deploy` uploads, one Durable Object per
# store with its SQLite file on local disk. `./scripts/selfhost` builds the worker and runs
#
#   npx workerd serve selfhost/workerd.capnp \
#     --socket-addr http=127.0.0.1:8787 --directory-path do-storage=/var/lib/livestore-sync
#
# Settings come from environment variables of the workerd process, one per name of the README's
# configuration table (AUTH_TOKEN, ADMIN_TOKEN, JWT_SECRET, CORS, ...), so no secret is written
# into this file. An unset variable is an unset setting.
#
# Paths in `embed` are relative to this file; paths given on the command line are relative to the
# working directory.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .syncWorker),
    # Where the Durable Objects keep their SQLite files: one subdirectory per class, named by its
    # uniqueKey, and one <object id>.sqlite file per store in it. (workerd's schema calls this
    # storage experimental, subject to incompatible change: package.json pins workerd.) The path is the working
    # directory's .state/selfhost unless --directory-path do-storage=DIR says otherwise.
    (name = "do-storage", disk = (path = ".state/selfhost", writable = true)),
    # The Worker's only outgoing requests go where the operator says: OTLP span exports to
    # OTEL_EXPORTER_OTLP_ENDPOINT and outbox batches to WEBHOOK_URL, often a collector or the
    # app's backend on the same host or network, which workerd's default (public addresses
    # only) would refuse.
    (name = "internet", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [
    # Plain HTTP (and WebSocket upgrades); put a TLS-terminating proxy in front for wss://.
    # --socket-addr http=ADDR:PORT overrides the address.
    (name = "http", address = "127.0.0.1:8787", http = (), service = "main"),
  ],
);

const syncWorker :Workerd.Worker = (
  modules = [
    (name = "index.js", esModule = embed "../build/index.js"),
    (name = "wasm-worker.js", esModule = embed "../build/wasm-worker.js"),
    (name = "index_bg.wasm", wasm = embed "../build/index_bg.wasm"),
  ],
  # As in wrangler.toml.
  compatibilityDate = "2026-04-01",
  durableObjectNamespaces = [
    # Object ids are derived from uniqueKey, and the storage subdirectory is named by it: changing
    # it orphans every stored store.
    (className = "SyncBackendDO", uniqueKey = "livestore-sync-SyncBackendDO", enableSql = true),
  ],
  durableObjectStorage = (localDisk = "do-storage"),
  bindings = [
    (name = "SYNC_BACKEND_DO", durableObjectNamespace = "SyncBackendDO"),
    (name = "AUTH_TOKEN", fromEnvironment = "AUTH_TOKEN"),
    (name = "READ_TOKEN", fromEnvironment = "READ_TOKEN"),
    (name = "ALLOW_ANONYMOUS", fromEnvironment = "ALLOW_ANONYMOUS"),
    (name = "JWT_SECRET", fromEnvironment = "JWT_SECRET"),
    (name = "JWT_JWKS", fromEnvironment = "JWT_JWKS"),
    (name = "JWT_AUDIENCE", fromEnvironment = "JWT_AUDIENCE"),
    (name = "JWT_ISSUER", fromEnvironment = "JWT_ISSUER"),
    (name = "JWT_MAX_LIFETIME", fromEnvironment = "JWT_MAX_LIFETIME"),
    (name = "CORS", fromEnvironment = "CORS"),
    (name = "SYNC_BACKEND_BINDING", fromEnvironment = "SYNC_BACKEND_BINDING"),
    (name = "MAX_MESSAGE_BYTES", fromEnvironment = "MAX_MESSAGE_BYTES"),
    (name = "MAX_STORE_ID_BYTES", fromEnvironment = "MAX_STORE_ID_BYTES"),
    (name = "MAX_PUSH_EVENTS", fromEnvironment = "MAX_PUSH_EVENTS"),
    (name = "MAX_SOCKETS_PER_STORE", fromEnvironment = "MAX_SOCKETS_PER_STORE"),
    (name = "MAX_PUSHES_PER_SECOND", fromEnvironment = "MAX_PUSHES_PER_SECOND"),
    (name = "ALLOWED_EVENTS", fromEnvironment = "ALLOWED_EVENTS"),
    (name = "MAX_ARGS_BYTES", fromEnvironment = "MAX_ARGS_BYTES"),
    (name = "MAX_STORE_EVENTS", fromEnvironment = "MAX_STORE_EVENTS"),
    (name = "MAX_STORE_BYTES", fromEnvironment = "MAX_STORE_BYTES"),
    (name = "STORE_DIRECTORY", fromEnvironment = "STORE_DIRECTORY"),
    (name = "EXPIRE_IDLE_STORES_AFTER", fromEnvironment = "EXPIRE_IDLE_STORES_AFTER"),
    (name = "ENABLED_TRANSPORTS", fromEnvironment = "ENABLED_TRANSPORTS"),
    (name = "ELECTRIC_HOLD_SECONDS", fromEnvironment = "ELECTRIC_HOLD_SECONDS"),
    (name = "HTTP_RESPONSE_HEADERS", fromEnvironment = "HTTP_RESPONSE_HEADERS"),
    (name = "ADMIN_TOKEN", fromEnvironment = "ADMIN_TOKEN"),
    (name = "FORWARD_HEADERS", fromEnvironment = "FORWARD_HEADERS"),
    (name = "OTEL_EXPORTER_OTLP_ENDPOINT", fromEnvironment = "OTEL_EXPORTER_OTLP_ENDPOINT"),
    (name = "OTEL_SERVICE_NAME", fromEnvironment = "OTEL_SERVICE_NAME"),
    (name = "LOG_LEVEL", fromEnvironment = "LOG_LEVEL"),
    # The outbox's webhook; QUEUE_BINDING and its settings are not here: workerd has no Queues.
    (name = "WEBHOOK_URL", fromEnvironment = "WEBHOOK_URL"),
    (name = "WEBHOOK_SECRET", fromEnvironment = "WEBHOOK_SECRET"),
    (name = "WEBHOOK_EVENTS", fromEnvironment = "WEBHOOK_EVENTS"),
    (name = "WEBHOOK_BATCH_SIZE", fromEnvironment = "WEBHOOK_BATCH_SIZE"),
    (name = "WEBHOOK_MAX_ATTEMPTS", fromEnvironment = "WEBHOOK_MAX_ATTEMPTS"),
    (name = "WEBHOOK_RETRY_BASE_MS", fromEnvironment = "WEBHOOK_RETRY_BASE_MS"),
    (name = "WEBHOOK_RETRY_MAX_MS", fromEnvironment = "WEBHOOK_RETRY_MAX_MS"),
    (name = "WEBHOOK_TIMEOUT_MS", fromEnvironment = "WEBHOOK_TIMEOUT_MS"),
    # STORAGE=d1 is not possible here: workerd has no D1 (see the README). STORAGE=postgres needs
    # the build with the Postgres engine (./scripts/selfhost --postgres embeds build-postgres/)
    # and POSTGRES_URL.
    (name = "STORAGE", fromEnvironment = "STORAGE"),
    (name = "POSTGRES_URL", fromEnvironment = "POSTGRES_URL"),
  ],
);
