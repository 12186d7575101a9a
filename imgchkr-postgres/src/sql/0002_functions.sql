-- imgchkr-postgres migration 2: one server-side function per engine call, so each call is one
-- statement (one round trip, one transaction). Times always come from the caller (`p_now`,
-- `p_until`, `at` of an update); the database's clock is read only for the history columns
-- of `deliveries`. Every function is VOLATILE: each statement inside sees what committed
-- before it (READ COMMITTED), which the locking below relies on.

-- RFC 3339 in UTC to the microsecond (what `Job`'s serde reads back).
CREATE FUNCTION @S@.ts(t timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- A job as core's `Job` deserializes it.
CREATE FUNCTION @S@.job_json(j @S@.jobs) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', j.id,
        'state', j.state,
        'errors', j.errors,
        'notifications', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                'event', d.event, 'url', d.url, 'status', d.status, 'attempts', d.attempts,
                'http_status', d.http_status, 'error', d.error) ORDER BY d.ord, d.event)
            FROM @S@.deliveries d WHERE d.tenant = j.tenant AND d.id = j.id), '[]'::jsonb),
        'assetPath', jsonb_build_object('location', j.location, 'path', j.asset_path),
        'notificationUrls', jsonb_build_object(
            'onStart', j.on_start_url, 'onSuccess', j.on_success_url,
            'onFailure', j.on_failure_url),
        'tenant', j.tenant,
        'priority', (ARRAY['high', 'normal', 'low'])[j.priority + 1],
        'warnings', j.warnings,
        'createdAt', @S@.ts(j.created_at),
        'startedAt', @S@.ts(j.started_at),
        'finishedAt', @S@.ts(j.finished_at))
$$;

-- Forgets a tenant's turn once it has nothing waiting and nothing in flight (it then queues
-- as a tenant never served). The row is locked first, which waits for submissions holding it
-- (KEY SHARE, see `submit`); the check after the lock sees what they committed.
CREATE FUNCTION @S@.line_gone(p_tenant text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM @S@.queue q WHERE q.tenant = p_tenant)
       OR EXISTS (SELECT 1 FROM @S@.jobs j
                  WHERE j.tenant = p_tenant AND j.lease_worker IS NOT NULL) THEN
        RETURN;
    END IF;
    PERFORM 1 FROM @S@.tenants t WHERE t.tenant = p_tenant FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    DELETE FROM @S@.tenants t
    WHERE t.tenant = p_tenant
      AND NOT EXISTS (SELECT 1 FROM @S@.queue q WHERE q.tenant = p_tenant)
      AND NOT EXISTS (SELECT 1 FROM @S@.jobs j
                      WHERE j.tenant = p_tenant AND j.lease_worker IS NOT NULL);
END
$$;

-- Whether at least `p_bound` jobs wait (of `p_tenant`, or of all tenants when it is NULL).
-- The distance between the oldest and the newest submission waiting bounds how many wait
-- (two index probes); only when that bound reaches `p_bound` are they counted, at most
-- `p_bound` index entries. No counter row: concurrent submissions never wait on each other.
CREATE FUNCTION @S@.at_least(p_tenant text, p_bound bigint) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_span bigint;
BEGIN
    IF p_tenant IS NULL THEN
        v_span := (SELECT max(q.seq) FROM @S@.queue q) - (SELECT min(q.seq) FROM @S@.queue q) + 1;
        IF coalesce(v_span, 0) < p_bound THEN
            RETURN false;
        END IF;
        RETURN (SELECT count(*) FROM (SELECT 1 FROM @S@.queue LIMIT p_bound) w) >= p_bound;
    END IF;
    v_span := (SELECT max(q.seq) FROM @S@.queue q WHERE q.tenant = p_tenant)
              - (SELECT min(q.seq) FROM @S@.queue q WHERE q.tenant = p_tenant) + 1;
    IF coalesce(v_span, 0) < p_bound THEN
        RETURN false;
    END IF;
    RETURN (SELECT count(*) FROM (SELECT 1 FROM @S@.queue q WHERE q.tenant = p_tenant
                                  LIMIT p_bound) w) >= p_bound;
END
$$;

-- Records a job and queues it, in one step (idle workers are notified by the caller once
-- it committed). Returns {"r": "new"}, {"r": "existing", "job"}
-- or {"r": "full", "which": "queue" | "tenant"}. The bounds are checked with `at_least`:
-- concurrent submissions may each see the last free place.
CREATE FUNCTION @S@.submit(
    p_tenant text, p_id uuid, p_priority smallint, p_location text, p_path text,
    p_on_start text, p_on_success text, p_on_failure text, p_created timestamptz,
    p_errors jsonb, p_warnings jsonb, p_capacity bigint, p_share bigint)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_seq bigint;
    v_row @S@.jobs;
    v_full text;
BEGIN
    -- The bounds first: a new key (the common case) needs no lookup before its insert.
    IF @S@.at_least(NULL, p_capacity) THEN
        v_full := 'queue';
    ELSIF @S@.at_least(p_tenant, p_share) THEN
        v_full := 'tenant';
    END IF;
    IF v_full IS NOT NULL THEN
        -- An existing job is answered even when the queue is full.
        SELECT * INTO v_row FROM @S@.jobs j WHERE j.tenant = p_tenant AND j.id = p_id;
        IF FOUND THEN
            RETURN jsonb_build_object('r', 'existing', 'job', @S@.job_json(v_row));
        END IF;
        RETURN jsonb_build_object('r', 'full', 'which', v_full);
    END IF;
    v_seq := nextval('@S@.seq');
    INSERT INTO @S@.jobs (tenant, id, seq, state, priority, location, asset_path, on_start_url,
                          on_success_url, on_failure_url, errors, warnings, created_at)
    VALUES (p_tenant, p_id, v_seq, 'queued', p_priority, p_location, p_path, p_on_start,
            p_on_success, p_on_failure, p_errors, p_warnings, p_created)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        -- The key exists (submitted before, or concurrently and committed first).
        SELECT * INTO v_row FROM @S@.jobs j WHERE j.tenant = p_tenant AND j.id = p_id;
        RETURN jsonb_build_object('r', 'existing', 'job', @S@.job_json(v_row));
    END IF;
    -- A key submitted again after it expired is a new job.
    DELETE FROM @S@.tombstones t WHERE t.tenant = p_tenant AND t.id = p_id;
    -- The tenant's turn row, held (KEY SHARE: submissions do not block each other) until
    -- this job is committed in the line, so `line_gone` cannot remove it meanwhile.
    FOR i IN 1..5 LOOP
        PERFORM 1 FROM @S@.tenants t WHERE t.tenant = p_tenant FOR KEY SHARE;
        EXIT WHEN FOUND;
        IF i = 5 THEN
            RAISE EXCEPTION 'imgchkr: the turn of tenant % keeps disappearing', p_tenant;
        END IF;
        INSERT INTO @S@.tenants (tenant, last_served, since) VALUES (p_tenant, 0, v_seq)
        ON CONFLICT DO NOTHING;
    END LOOP;
    INSERT INTO @S@.queue (tenant, priority, seq, id) VALUES (p_tenant, p_priority, v_seq, p_id);
    -- No NOTIFY here: a transaction that notifies holds a database-wide lock through its
    -- commit (and its WAL flush), which would serialize every submission. The engine
    -- notifies after the commit instead, from a statement of its own (see `notify.rs`).
    RETURN jsonb_build_object('r', 'new');
END
$$;

-- The job, its tombstone, or nothing: {"r": "found", "job"} | {"r": "expired"} | {"r": "unknown"}.
CREATE FUNCTION @S@.get(p_tenant text, p_id uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_row @S@.jobs;
BEGIN
    SELECT * INTO v_row FROM @S@.jobs j WHERE j.tenant = p_tenant AND j.id = p_id;
    IF FOUND THEN
        RETURN jsonb_build_object('r', 'found', 'job', @S@.job_json(v_row));
    END IF;
    IF EXISTS (SELECT 1 FROM @S@.tombstones t WHERE t.tenant = p_tenant AND t.id = p_id) THEN
        RETURN jsonb_build_object('r', 'expired');
    END IF;
    RETURN jsonb_build_object('r', 'unknown');
END
$$;

-- A page of jobs newest first: of one tenant (p_scoped) or all, in one state or any, before
-- the cursor job (unknown, or another tenant's when scoped: an empty page).
CREATE FUNCTION @S@.list(
    p_scoped boolean, p_tenant text, p_state text, p_has_cursor boolean, p_cursor_tenant text,
    p_cursor_id uuid, p_limit bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_before bigint := NULL;
BEGIN
    IF p_has_cursor THEN
        IF p_scoped AND p_cursor_tenant <> p_tenant THEN
            RETURN '[]'::jsonb;
        END IF;
        SELECT j.seq INTO v_before FROM @S@.jobs j
        WHERE j.tenant = p_cursor_tenant AND j.id = p_cursor_id;
        IF NOT FOUND THEN
            RETURN '[]'::jsonb;
        END IF;
    END IF;
    IF p_scoped THEN
        RETURN coalesce((
            SELECT jsonb_agg(@S@.job_json(page) ORDER BY page.seq DESC)
            FROM (SELECT j.* FROM @S@.jobs j
                  WHERE j.tenant = p_tenant
                    AND (v_before IS NULL OR j.seq < v_before)
                    AND (p_state IS NULL OR j.state = p_state)
                  ORDER BY j.seq DESC LIMIT p_limit) page), '[]'::jsonb);
    END IF;
    RETURN coalesce((
        SELECT jsonb_agg(@S@.job_json(page) ORDER BY page.seq DESC)
        FROM (SELECT j.* FROM @S@.jobs j
              WHERE (v_before IS NULL OR j.seq < v_before)
                AND (p_state IS NULL OR j.state = p_state)
              ORDER BY j.seq DESC LIMIT p_limit) page), '[]'::jsonb);
END
$$;

-- Cancels a queued job: {"r": "cancelled" | "notqueued", "job"} | {"r": "expired" | "unknown"}.
-- The line entry is taken first: a worker that is leasing it holds it, and then the job is
-- not queued any more.
CREATE FUNCTION @S@.cancel(p_tenant text, p_id uuid, p_at timestamptz) RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    j @S@.jobs;
BEGIN
    SELECT * INTO j FROM @S@.jobs x WHERE x.tenant = p_tenant AND x.id = p_id;
    IF NOT FOUND THEN
        IF EXISTS (SELECT 1 FROM @S@.tombstones t WHERE t.tenant = p_tenant AND t.id = p_id) THEN
            RETURN jsonb_build_object('r', 'expired');
        END IF;
        RETURN jsonb_build_object('r', 'unknown');
    END IF;
    IF j.state = 'queued' THEN
        DELETE FROM @S@.queue q
        WHERE q.tenant = p_tenant AND q.priority = j.priority AND q.seq = j.seq;
        IF FOUND THEN
            UPDATE @S@.jobs x SET state = 'cancelled', finished_at = p_at, retired_at = p_at
            WHERE x.tenant = p_tenant AND x.id = p_id
            RETURNING * INTO j;
            PERFORM @S@.line_gone(p_tenant);
            RETURN jsonb_build_object('r', 'cancelled', 'job', @S@.job_json(j));
        END IF;
    END IF;
    SELECT * INTO j FROM @S@.jobs x WHERE x.tenant = p_tenant AND x.id = p_id;
    RETURN jsonb_build_object('r', 'notqueued', 'job', @S@.job_json(j));
END
$$;

-- Leases jobs to a worker (replacing earlier leases) and marks them started, as
-- `Job::apply(Started)` does, in one statement. p_pos orders the reply. Returns
-- [{"d": deliveries, "job"}…] in p_pos order (jobs that no longer exist are left out).
CREATE FUNCTION @S@.take(
    p_tenants text[], p_ids uuid[], p_pos integer[], p_worker text, p_now timestamptz,
    p_until timestamptz)
RETURNS jsonb
LANGUAGE sql VOLATILE AS $$
    WITH taken AS (
        UPDATE @S@.jobs x SET
            deliveries = x.deliveries + 1,
            lease_worker = p_worker,
            lease_until = p_until,
            state = CASE WHEN x.state IN ('queued', 'started') THEN 'started' ELSE x.state END,
            started_at = CASE WHEN x.state = 'cancelled' THEN x.started_at
                              ELSE coalesce(x.started_at, p_now) END
        FROM unnest(p_tenants, p_ids, p_pos) AS u(tenant, id, pos)
        WHERE x.tenant = u.tenant AND x.id = u.id
        RETURNING u.pos, x.deliveries, @S@.job_json(x) AS job
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('d', t.deliveries, 'job', t.job)
                              ORDER BY t.pos), '[]'::jsonb)
    FROM taken t
$$;

-- Hands out up to p_max jobs (at most 1000): first those whose lease expired (taken over),
-- then waiting ones, round-robin across tenants (least recently served first; higher
-- priority first and FIFO within a tenant), skipping tenants with p_cap jobs in flight. Rows
-- other workers are taking are skipped (SKIP LOCKED), never waited for. Each tenant's share
-- of the batch leaves its line in one statement. Returns {"leased": [{"d", "job"}…], "more":
-- whether jobs are left waiting after a lease that took some}.
CREATE FUNCTION @S@.lease(
    p_worker text, p_max integer, p_now timestamptz, p_until timestamptz, p_cap bigint)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_max integer := least(greatest(p_max, 1), 1000);
    v_out jsonb;
    v_taken integer;
    v_left integer;
    v_tenants text[];
    v_room bigint[];
    v_alloc integer[];
    v_n integer;
    v_any boolean;
    v_ids uuid[];
    v_pt text[] := '{}';
    v_pi uuid[] := '{}';
    v_pos integer[] := '{}';
    v_order integer[];
    v_rank integer[] := '{}';
    v_ti integer[] := '{}';
    v_base bigint;
BEGIN
    WITH expired AS (
        SELECT j.tenant, j.id, j.lease_until FROM @S@.jobs j
        WHERE j.lease_worker IS NOT NULL AND j.lease_until <= p_now
        ORDER BY j.lease_until
        LIMIT v_max
        FOR UPDATE SKIP LOCKED
    )
    SELECT coalesce(array_agg(e.tenant ORDER BY e.lease_until, e.tenant, e.id), '{}'),
           coalesce(array_agg(e.id ORDER BY e.lease_until, e.tenant, e.id), '{}')
    INTO v_pt, v_pi FROM expired e;
    v_out := @S@.take(v_pt, v_pi,
                      ARRAY(SELECT generate_series(1, coalesce(array_length(v_pi, 1), 0))),
                      p_worker, p_now, p_until);
    v_taken := jsonb_array_length(v_out);
    v_left := v_max - v_taken;

    IF v_left > 0 THEN
        -- Tenants with jobs waiting in serving order, and how many more each may take (as
        -- many tenants as jobs still wanted, and a few more for lines others are taking).
        SELECT coalesce(array_agg(c.tenant ORDER BY c.last_served, c.since, c.tenant), '{}'),
               coalesce(array_agg(c.room ORDER BY c.last_served, c.since, c.tenant), '{}')
        INTO v_tenants, v_room
        FROM (
            SELECT s.* FROM (
                SELECT t.tenant, t.last_served, t.since,
                       CASE WHEN p_cap IS NULL THEN v_left::bigint
                            ELSE p_cap - (SELECT count(*) FROM @S@.jobs j
                                          WHERE j.tenant = t.tenant
                                            AND j.lease_worker IS NOT NULL) END AS room
                FROM @S@.tenants t
                WHERE EXISTS (SELECT 1 FROM @S@.queue q WHERE q.tenant = t.tenant)
            ) s
            WHERE s.room > 0
            ORDER BY s.last_served, s.since, s.tenant
            LIMIT v_left + 16
        ) c;
        v_n := coalesce(array_length(v_tenants, 1), 0);
        -- What each tenant has waiting, up to what it may take.
        FOR i IN 1..v_n LOOP
            v_room[i] := (SELECT count(*) FROM (
                              SELECT 1 FROM @S@.queue q WHERE q.tenant = v_tenants[i]
                              LIMIT least(v_room[i], v_left)) w);
        END LOOP;
        -- The places dealt round by round, each round one per tenant in serving order, as
        -- turns taken one job at a time would (a served tenant goes behind every other).
        v_alloc := array_fill(0, ARRAY[v_n]);
        LOOP
            v_any := false;
            FOR i IN 1..v_n LOOP
                EXIT WHEN v_left = 0;
                IF v_alloc[i] < v_room[i] THEN
                    v_alloc[i] := v_alloc[i] + 1;
                    v_left := v_left - 1;
                    v_any := true;
                END IF;
            END LOOP;
            EXIT WHEN NOT v_any OR v_left = 0;
        END LOOP;
        -- Each tenant's share leaves its line at once; round r of the deal is each
        -- tenant's r-th job.
        v_pt := '{}';
        v_pi := '{}';
        FOR i IN 1..v_n LOOP
            CONTINUE WHEN v_alloc[i] = 0;
            WITH popped AS (
                DELETE FROM @S@.queue q
                WHERE (q.tenant, q.priority, q.seq) IN (
                    SELECT w.tenant, w.priority, w.seq FROM @S@.queue w
                    WHERE w.tenant = v_tenants[i]
                    ORDER BY w.priority, w.seq
                    LIMIT v_alloc[i]
                    FOR UPDATE SKIP LOCKED)
                RETURNING q.priority, q.seq, q.id
            )
            SELECT coalesce(array_agg(p.id ORDER BY p.priority, p.seq), '{}')
            INTO v_ids FROM popped p;
            FOR r IN 1..coalesce(array_length(v_ids, 1), 0) LOOP
                v_pt := v_pt || v_tenants[i];
                v_pi := v_pi || v_ids[r];
                v_rank := v_rank || r;
                v_ti := v_ti || i;
            END LOOP;
        END LOOP;
        IF coalesce(array_length(v_pi, 1), 0) > 0 THEN
            -- Positions in serving order: by round, then by the tenant's place.
            SELECT array_agg(o.pos ORDER BY o.n) INTO v_pos
            FROM (SELECT u.n, row_number() OVER (ORDER BY u.rank, u.ti) AS pos
                  FROM unnest(v_rank, v_ti) WITH ORDINALITY AS u(rank, ti, n)) o;
            v_out := v_out || @S@.take(v_pt, v_pi, v_pos, p_worker, p_now, p_until);
            -- A served tenant's turn: this lease's, then its last job's place in it (so
            -- tenants served here go behind every tenant not served since).
            v_base := nextval('@S@.turn') * 1024;
            -- Locked in tenant order, so concurrent leases cannot deadlock on them.
            PERFORM 1 FROM @S@.tenants t WHERE t.tenant = ANY (v_pt)
            ORDER BY t.tenant FOR NO KEY UPDATE;
            UPDATE @S@.tenants t SET last_served = greatest(t.last_served, s.turn)
            FROM (SELECT u.tenant, v_base + max(u.pos) AS turn
                  FROM unnest(v_pt, v_pos) AS u(tenant, pos)
                  GROUP BY u.tenant) s
            WHERE t.tenant = s.tenant;
        END IF;
    END IF;
    RETURN jsonb_build_object(
        'leased', v_out,
        'more', jsonb_array_length(v_out) > 0 AND EXISTS (SELECT 1 FROM @S@.queue));
END
$$;

-- Pushes back the leases still held by the worker and notes it alive. Returns the (1-based)
-- positions of the leases no longer held.
CREATE FUNCTION @S@.heartbeat(
    p_worker text, p_tenants text[], p_ids uuid[], p_now timestamptz, p_until timestamptz,
    p_forget timestamptz, p_status text)
RETURNS integer[]
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_kept integer[];
    v_n integer := coalesce(array_length(p_ids, 1), 0);
BEGIN
    WITH kept AS (
        UPDATE @S@.jobs j SET lease_until = p_until
        FROM unnest(p_tenants, p_ids) WITH ORDINALITY AS u(tenant, id, n)
        WHERE j.tenant = u.tenant AND j.id = u.id AND j.lease_worker = p_worker
        RETURNING u.n
    )
    SELECT coalesce(array_agg(n::integer), '{}') INTO v_kept FROM kept;
    DELETE FROM @S@.workers w WHERE w.at <= p_forget AND w.worker <> p_worker;
    INSERT INTO @S@.workers (worker, at, held, status)
    VALUES (p_worker, p_now, coalesce(array_length(v_kept, 1), 0), p_status)
    ON CONFLICT (worker) DO UPDATE SET at = EXCLUDED.at, held = EXCLUDED.held,
                                       status = EXCLUDED.status;
    RETURN coalesce((SELECT array_agg(g ORDER BY g) FROM generate_series(1, v_n) g
                     WHERE g <> ALL (v_kept)), '{}');
END
$$;

-- Applies updates to a job, in order, as `Job::apply` does; with p_finish also ends its
-- lease and puts it under retention. Returns whether the job exists. Each update is a JSON
-- object {"k": "started" | "verdict" | "gaveup" | "delivery", …}.
CREATE FUNCTION @S@.apply(p_tenant text, p_id uuid, p_updates jsonb, p_finish boolean)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    j @S@.jobs;
    u jsonb;
    v_held boolean;
BEGIN
    SELECT * INTO j FROM @S@.jobs x WHERE x.tenant = p_tenant AND x.id = p_id
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    FOR u IN SELECT e FROM jsonb_array_elements(p_updates) AS e LOOP
        CASE u ->> 'k'
        WHEN 'started' THEN
            IF j.state <> 'cancelled' THEN
                IF j.state NOT IN ('success', 'failed') THEN
                    j.state := 'started';
                END IF;
                j.started_at := coalesce(j.started_at, (u ->> 'at')::timestamptz);
            END IF;
        WHEN 'verdict' THEN
            IF j.state <> 'cancelled' THEN
                j.errors := nullif(u -> 'errors', 'null'::jsonb);
                j.state := CASE WHEN j.errors IS NULL THEN 'success' ELSE 'failed' END;
                j.warnings := u -> 'warnings';
                j.finished_at := (u ->> 'at')::timestamptz;
            END IF;
        WHEN 'gaveup' THEN
            IF j.state NOT IN ('success', 'failed', 'cancelled') THEN
                j.state := 'failed';
                j.errors := u -> 'errors';
                j.finished_at := (u ->> 'at')::timestamptz;
            END IF;
        WHEN 'delivery' THEN
            INSERT INTO @S@.deliveries AS d (tenant, id, event, ord, url, status, attempts,
                                            http_status, error, recorded_at, done_at)
            VALUES (p_tenant, p_id, u ->> 'event',
                    (SELECT count(*) FROM @S@.deliveries c
                     WHERE c.tenant = p_tenant AND c.id = p_id),
                    u ->> 'url', u ->> 'status', (u ->> 'attempts')::integer,
                    (u ->> 'http_status')::integer, u ->> 'error', clock_timestamp(),
                    CASE WHEN u ->> 'status' <> 'pending' THEN clock_timestamp() END)
            ON CONFLICT (tenant, id, event) DO UPDATE SET
                url = EXCLUDED.url, status = EXCLUDED.status, attempts = EXCLUDED.attempts,
                http_status = EXCLUDED.http_status, error = EXCLUDED.error,
                done_at = CASE WHEN EXCLUDED.status = 'pending' THEN NULL
                               ELSE coalesce(d.done_at, EXCLUDED.done_at) END;
        ELSE
            RAISE EXCEPTION 'imgchkr: unknown update %', u ->> 'k';
        END CASE;
    END LOOP;
    v_held := j.lease_worker IS NOT NULL;
    IF p_finish THEN
        j.lease_worker := NULL;
        j.lease_until := NULL;
        j.retired_at := coalesce(j.retired_at, j.finished_at, j.created_at);
    END IF;
    UPDATE @S@.jobs x SET state = j.state, errors = j.errors, warnings = j.warnings,
        started_at = j.started_at, finished_at = j.finished_at, lease_worker = j.lease_worker,
        lease_until = j.lease_until, retired_at = j.retired_at
    WHERE x.tenant = p_tenant AND x.id = p_id;
    IF p_finish AND v_held THEN
        PERFORM @S@.line_gone(p_tenant);
    END IF;
    RETURN true;
END
$$;

-- Gives a lease up: its deadline becomes -infinity, so the next lease of any worker takes it
-- over. Returns whether the worker held it.
CREATE FUNCTION @S@.release(p_tenant text, p_id uuid, p_worker text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    UPDATE @S@.jobs j SET lease_until = '-infinity'
    WHERE j.tenant = p_tenant AND j.id = p_id AND j.lease_worker = p_worker;
    IF FOUND THEN
        PERFORM pg_notify(@CHANNEL@, '');
        RETURN true;
    END IF;
    RETURN false;
END
$$;

-- Expires finished jobs past retention (by age, then per tenant by count), leaving
-- tombstones, and drops old tombstones, remembered values and full buckets: at most
-- p_budget rows of each kind per call, taken with SKIP LOCKED (no waiting on busy rows).
-- Returns how many jobs expired.
CREATE FUNCTION @S@.purge(
    p_now timestamptz, p_age_before timestamptz, p_max_jobs bigint, p_tomb_before timestamptz,
    p_max_tombs bigint, p_budget bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_expired bigint := 0;
    v_n bigint;
    v_estimate real;
    r record;
BEGIN
    WITH gone AS (
        DELETE FROM @S@.jobs j
        WHERE (j.tenant, j.id) IN (
            SELECT x.tenant, x.id FROM @S@.jobs x
            WHERE x.retired_at IS NOT NULL AND x.retired_at <= p_age_before
            ORDER BY x.retired_at
            LIMIT p_budget
            FOR UPDATE SKIP LOCKED)
        RETURNING j.tenant, j.id
    ), notes AS (
        DELETE FROM @S@.deliveries d USING gone g WHERE d.tenant = g.tenant AND d.id = g.id
    )
    INSERT INTO @S@.tombstones (tenant, id, expired_at)
    SELECT g.tenant, g.id, p_now FROM gone g
    ON CONFLICT (tenant, id) DO UPDATE SET expired_at = EXCLUDED.expired_at;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_expired := v_expired + v_n;

    -- Tenants holding more than their count lose their oldest finished jobs (one tenant's
    -- volume never evicts another's). Counting reads every job's index entry, so it is
    -- skipped while the planner's estimate of all jobs is well under one tenant's count.
    SELECT c.reltuples INTO v_estimate FROM pg_class c WHERE c.oid = '@S@.jobs'::regclass;
    IF v_expired < p_budget AND (v_estimate < 0 OR v_estimate > p_max_jobs / 2) THEN
        FOR r IN
            SELECT j.tenant, count(*) AS n FROM @S@.jobs j
            GROUP BY j.tenant HAVING count(*) > p_max_jobs
        LOOP
            EXIT WHEN v_expired >= p_budget;
            WITH gone AS (
                DELETE FROM @S@.jobs j
                WHERE (j.tenant, j.id) IN (
                    SELECT x.tenant, x.id FROM @S@.jobs x
                    WHERE x.tenant = r.tenant AND x.retired_at IS NOT NULL
                    ORDER BY x.retired_at, x.seq
                    LIMIT least(r.n - p_max_jobs, p_budget - v_expired)
                    FOR UPDATE SKIP LOCKED)
                RETURNING j.tenant, j.id
            ), notes AS (
                DELETE FROM @S@.deliveries d USING gone g
                WHERE d.tenant = g.tenant AND d.id = g.id
            )
            INSERT INTO @S@.tombstones (tenant, id, expired_at)
            SELECT g.tenant, g.id, p_now FROM gone g
            ON CONFLICT (tenant, id) DO UPDATE SET expired_at = EXCLUDED.expired_at;
            GET DIAGNOSTICS v_n = ROW_COUNT;
            v_expired := v_expired + v_n;
        END LOOP;
    END IF;

    DELETE FROM @S@.tombstones t
    WHERE (t.tenant, t.id) IN (
        SELECT x.tenant, x.id FROM @S@.tombstones x WHERE x.expired_at <= p_tomb_before
        ORDER BY x.expired_at LIMIT p_budget FOR UPDATE SKIP LOCKED);
    -- Past their count, the oldest tombstones go (the same estimate spares the scan).
    SELECT c.reltuples INTO v_estimate FROM pg_class c
    WHERE c.oid = '@S@.tombstones'::regclass;
    IF v_estimate < 0 OR v_estimate > p_max_tombs / 2 THEN
        DELETE FROM @S@.tombstones t
        WHERE (t.tenant, t.id) IN (
            SELECT x.tenant, x.id FROM @S@.tombstones x
            ORDER BY x.expired_at DESC, x.tenant DESC, x.id DESC
            OFFSET p_max_tombs LIMIT p_budget FOR UPDATE SKIP LOCKED);
    END IF;
    DELETE FROM @S@.remembered m
    WHERE m.key IN (SELECT x.key FROM @S@.remembered x WHERE x.expires <= p_now
                    LIMIT p_budget FOR UPDATE SKIP LOCKED);
    DELETE FROM @S@.buckets b
    WHERE b.name IN (SELECT x.name FROM @S@.buckets x WHERE x.full_at <= p_now
                     LIMIT p_budget FOR UPDATE SKIP LOCKED);
    RETURN v_expired;
END
$$;

-- The queue's figures: {"waiting", "in_flight", "tenants": [[tenant, waiting, in flight]…],
-- "workers": [{"worker", "at", "held", "status"}…]}.
CREATE FUNCTION @S@.stats() RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'waiting', (SELECT count(*) FROM @S@.queue),
        'in_flight', (SELECT count(*) FROM @S@.jobs j WHERE j.lease_worker IS NOT NULL),
        'tenants', coalesce((
            SELECT jsonb_agg(jsonb_build_array(l.tenant, l.waiting, l.in_flight))
            FROM (SELECT x.tenant, sum(x.w) AS waiting, sum(x.f) AS in_flight
                  FROM (SELECT q.tenant, count(*) AS w, 0 AS f FROM @S@.queue q
                        GROUP BY q.tenant
                        UNION ALL
                        SELECT j.tenant, 0, count(*) FROM @S@.jobs j
                        WHERE j.lease_worker IS NOT NULL GROUP BY j.tenant) x
                  GROUP BY x.tenant) l), '[]'::jsonb),
        'workers', coalesce((
            SELECT jsonb_agg(jsonb_build_object('worker', w.worker, 'at', @S@.ts(w.at),
                                                'held', w.held, 'status', w.status))
            FROM @S@.workers w), '[]'::jsonb))
$$;

-- Takes a token from a bucket (created full), with the caller's clock in microseconds; a
-- clock that goes back adds none. Returns {"granted": bool, "tokens": left}.
CREATE FUNCTION @S@.take_token(p_name text, p_rate double precision, p_burst integer,
                               p_now_us bigint)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_tokens double precision;
    v_at bigint;
    v_granted boolean := false;
    v_full_in double precision;
BEGIN
    INSERT INTO @S@.buckets (name, tokens, at_us, full_at)
    VALUES (p_name, p_burst, p_now_us, to_timestamp(p_now_us / 1e6))
    ON CONFLICT DO NOTHING;
    SELECT b.tokens, b.at_us INTO v_tokens, v_at FROM @S@.buckets b WHERE b.name = p_name
    FOR NO KEY UPDATE;
    v_tokens := least(v_tokens + greatest(0, p_now_us - v_at) / 1e6 * p_rate, p_burst);
    v_at := greatest(v_at, p_now_us);
    IF v_tokens >= 1 THEN
        v_tokens := v_tokens - 1;
        v_granted := true;
    END IF;
    -- Seconds until full again (a bucket that never refills is kept a day).
    v_full_in := CASE WHEN p_rate > 0 THEN (p_burst - v_tokens) / p_rate ELSE 86400 END;
    UPDATE @S@.buckets b SET tokens = v_tokens, at_us = v_at,
        full_at = to_timestamp(v_at / 1e6 + least(v_full_in, 1e9))
    WHERE b.name = p_name;
    RETURN jsonb_build_object('granted', v_granted, 'tokens', v_tokens);
END
$$;

-- Remembers a value unless a live one is held: returns the held value, or NULL once stored.
CREATE FUNCTION @S@.remember(p_key text, p_value text, p_expires timestamptz, p_now timestamptz)
RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_held text;
BEGIN
    INSERT INTO @S@.remembered AS m (key, value, expires) VALUES (p_key, p_value, p_expires)
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires = EXCLUDED.expires
    WHERE m.expires <= p_now;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    SELECT m.value INTO v_held FROM @S@.remembered m WHERE m.key = p_key;
    RETURN v_held;
END
$$;
