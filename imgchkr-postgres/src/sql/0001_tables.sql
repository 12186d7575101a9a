-- imgchkr-postgres migration 1: the tables, sequences and indexes. `@S@` is the engine's
-- schema (a quoted identifier). Tenant names compare byte-wise (COLLATE "C"): any string is a
-- tenant, and no locale decides whether two are the same.

-- Submission order (FIFO within a tenant and priority, listing newest first).
CREATE SEQUENCE @S@.seq;
-- Round-robin turns: one per job handed out from the waiting lines.
CREATE SEQUENCE @S@.turn;

-- One row per job: the history. A row stays until retention expires it (then a tombstone).
CREATE TABLE @S@.jobs (
    tenant         text COLLATE "C" NOT NULL,
    id             uuid NOT NULL,
    seq            bigint NOT NULL,
    state          text NOT NULL
                   CHECK (state IN ('queued', 'started', 'success', 'failed', 'cancelled')),
    -- 0 high, 1 normal, 2 low.
    priority       smallint NOT NULL CHECK (priority BETWEEN 0 AND 2),
    -- The asset as the client gave it: `local`, `url` or `s3`, and its path, URL or S3 URI.
    location       text NOT NULL,
    asset_path     text NOT NULL,
    on_start_url   text NOT NULL,
    on_success_url text NOT NULL,
    on_failure_url text NOT NULL,
    -- {"image": ["…"]} once failed; NULL otherwise.
    errors         jsonb,
    warnings       jsonb NOT NULL DEFAULT '[]',
    created_at     timestamptz NOT NULL,
    started_at     timestamptz,
    finished_at    timestamptz,
    -- How many times the job was handed out to a worker.
    deliveries     integer NOT NULL DEFAULT 0,
    -- The lease: its holder and deadline while the job is in flight (NULL otherwise).
    lease_worker   text,
    lease_until    timestamptz,
    -- When retention starts counting (finished or cancelled, lease ended): its finish time.
    retired_at     timestamptz,
    PRIMARY KEY (tenant, id)
)
-- Room on each page for the new versions of `record` updates, which change no indexed
-- column: they stay on the page (HOT) and touch no index.
WITH (fillfactor = 70);
CREATE UNIQUE INDEX jobs_seq ON @S@.jobs (seq);
-- A tenant's listing, newest first, and its per-tenant counts.
CREATE INDEX jobs_tenant_seq ON @S@.jobs (tenant, seq);
-- Takeover of expired leases, and jobs in flight per tenant.
CREATE INDEX jobs_lease_until ON @S@.jobs (lease_until) WHERE lease_worker IS NOT NULL;
CREATE INDEX jobs_in_flight ON @S@.jobs (tenant) WHERE lease_worker IS NOT NULL;
-- Retention by age, and by count per tenant.
CREATE INDEX jobs_retired ON @S@.jobs (retired_at) WHERE retired_at IS NOT NULL;
CREATE INDEX jobs_tenant_retired ON @S@.jobs (tenant, retired_at, seq) WHERE retired_at IS NOT NULL;
-- History: the jobs of one asset.
CREATE INDEX jobs_asset_path ON @S@.jobs (asset_path);

-- One row per event a job notified (onStart, then onSuccess or onFailure), as its record
-- stands. `recorded_at` and `done_at` are the database's clock when the first record of the
-- delivery was written and when it stopped being pending: history only, never read back by
-- the engine.
CREATE TABLE @S@.deliveries (
    tenant      text COLLATE "C" NOT NULL,
    id          uuid NOT NULL,
    event       text NOT NULL CHECK (event IN ('onStart', 'onSuccess', 'onFailure')),
    -- The order the events were first recorded in.
    ord         smallint NOT NULL,
    url         text NOT NULL,
    status      text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts    integer NOT NULL,
    http_status integer,
    error       text,
    recorded_at timestamptz NOT NULL,
    done_at     timestamptz,
    latency_ms  double precision
                GENERATED ALWAYS AS (extract(epoch FROM done_at - recorded_at) * 1000) STORED,
    PRIMARY KEY (tenant, id, event)
);

-- The waiting lines: one row per job waiting, per tenant by priority then submission order.
CREATE TABLE @S@.queue (
    tenant   text COLLATE "C" NOT NULL,
    priority smallint NOT NULL,
    seq      bigint NOT NULL,
    id       uuid NOT NULL,
    PRIMARY KEY (tenant, priority, seq)
);
-- The oldest and newest submission waiting, overall and per tenant: their distance bounds how
-- many wait, so the capacity and share checks count only when the bound reaches them.
CREATE INDEX queue_seq ON @S@.queue (seq);
CREATE INDEX queue_tenant_seq ON @S@.queue (tenant, seq);

-- Round-robin: one row per tenant with jobs waiting or in flight. Tenants are served least
-- recently served first (`last_served`, 0 if never), then by `since` (the submission that
-- made the tenant's line non-empty). Gone once the tenant has nothing waiting or in flight.
CREATE TABLE @S@.tenants (
    tenant      text COLLATE "C" PRIMARY KEY,
    last_served bigint NOT NULL,
    since       bigint NOT NULL
);
CREATE INDEX tenants_turn ON @S@.tenants (last_served, since, tenant);

-- Expired jobs, remembered for `410 Gone` until they are old.
CREATE TABLE @S@.tombstones (
    tenant     text COLLATE "C" NOT NULL,
    id         uuid NOT NULL,
    expired_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX tombstones_expired_at ON @S@.tombstones (expired_at);

-- Token buckets shared by every process (the caller's clock, in microseconds).
CREATE TABLE @S@.buckets (
    name    text COLLATE "C" PRIMARY KEY,
    tokens  double precision NOT NULL,
    at_us   bigint NOT NULL,
    -- When it is full again: a row past it says nothing an absent row does not.
    full_at timestamptz NOT NULL
);
CREATE INDEX buckets_full_at ON @S@.buckets (full_at);

-- Remembered values (the replay window of signed requests, deployment-wide secrets).
CREATE TABLE @S@.remembered (
    key     text COLLATE "C" PRIMARY KEY,
    value   text NOT NULL,
    expires timestamptz NOT NULL
);
CREATE INDEX remembered_expires ON @S@.remembered (expires);

-- Workers as last heard from (their heartbeats).
CREATE TABLE @S@.workers (
    worker text COLLATE "C" PRIMARY KEY,
    at     timestamptz NOT NULL,
    held   bigint NOT NULL,
    status text NOT NULL
);
CREATE INDEX workers_at ON @S@.workers (at);
