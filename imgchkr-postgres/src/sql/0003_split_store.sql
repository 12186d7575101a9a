-- imgchkr-postgres migration 3: the store half of a split engine (records here, the work
-- carried by a broker: `--queue amqp://…`). Jobs are recorded by `submit` as always (their
-- line entry counts them waiting for the capacity and share checks and the queue's
-- figures); the broker's deliveries start them, and `apply` finishes them.

-- Marks jobs started for a broker's deliveries to p_worker, as `Job::apply(Started)` does: a
-- queued job leaves its line and is leased to the worker with no deadline (the broker holds
-- the delivery while the worker lives); a started or finished job is returned as it is (a
-- redelivery). Returns a JSON array in p_ids order: each job, or null for a job that no
-- longer exists or was cancelled (left unchanged).
CREATE FUNCTION @S@.start(p_tenants text[], p_ids uuid[], p_worker text, p_now timestamptz)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_out jsonb := '[]'::jsonb;
    j @S@.jobs;
BEGIN
    FOR i IN 1..coalesce(array_length(p_ids, 1), 0) LOOP
        SELECT * INTO j FROM @S@.jobs x WHERE x.tenant = p_tenants[i] AND x.id = p_ids[i]
        FOR NO KEY UPDATE;
        IF NOT FOUND OR j.state = 'cancelled' THEN
            v_out := v_out || jsonb_build_array(NULL::jsonb);
            CONTINUE;
        END IF;
        IF j.state = 'queued' THEN
            DELETE FROM @S@.queue q
            WHERE q.tenant = j.tenant AND q.priority = j.priority AND q.seq = j.seq;
        END IF;
        UPDATE @S@.jobs x SET
            deliveries = x.deliveries + 1,
            lease_worker = CASE WHEN x.state IN ('queued', 'started') THEN p_worker
                                ELSE x.lease_worker END,
            lease_until = CASE WHEN x.state IN ('queued', 'started') THEN 'infinity'
                               ELSE x.lease_until END,
            state = CASE WHEN x.state IN ('queued', 'started') THEN 'started' ELSE x.state END,
            started_at = coalesce(x.started_at, p_now)
        WHERE x.tenant = j.tenant AND x.id = j.id
        RETURNING * INTO j;
        v_out := v_out || jsonb_build_array(@S@.job_json(j));
    END LOOP;
    RETURN v_out;
END
$$;

-- Forgets a job recorded by `submit` whose message the broker did not confirm, if it is
-- still queued (as if never submitted). Returns whether it did.
CREATE FUNCTION @S@.remove(p_tenant text, p_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    j @S@.jobs;
BEGIN
    SELECT * INTO j FROM @S@.jobs x WHERE x.tenant = p_tenant AND x.id = p_id FOR UPDATE;
    IF NOT FOUND OR j.state <> 'queued' THEN
        RETURN false;
    END IF;
    DELETE FROM @S@.queue q
    WHERE q.tenant = p_tenant AND q.priority = j.priority AND q.seq = j.seq;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    DELETE FROM @S@.deliveries d WHERE d.tenant = p_tenant AND d.id = p_id;
    DELETE FROM @S@.jobs x WHERE x.tenant = p_tenant AND x.id = p_id;
    PERFORM @S@.line_gone(p_tenant);
    RETURN true;
END
$$;

-- Notes a worker alive at p_now holding p_held jobs (a heartbeat without leases).
CREATE FUNCTION @S@.worker_seen(
    p_worker text, p_now timestamptz, p_forget timestamptz, p_held bigint, p_status text)
RETURNS void
LANGUAGE sql VOLATILE AS $$
    DELETE FROM @S@.workers w WHERE w.at <= p_forget AND w.worker <> p_worker;
    INSERT INTO @S@.workers (worker, at, held, status)
    VALUES (p_worker, p_now, p_held, p_status)
    ON CONFLICT (worker) DO UPDATE SET at = EXCLUDED.at, held = EXCLUDED.held,
                                       status = EXCLUDED.status;
$$;
