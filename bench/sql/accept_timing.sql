-- Server-side time per delivery of the inbox's SQL functions, without the client, the network or
-- the WAL flush (every call runs in the one transaction of the SELECT): ADR 0014's comparison of
-- migration 0003's `accept_deliveries` with migration 0004's.
--
-- Apply the migrations to a scratch schema, then this file, then time (µs per delivery):
--   psql -c 'CREATE SCHEMA accept_timing'
--   (echo 'SET search_path = accept_timing;'; cat crates/adapters/postgres/migrations/*.sql \
--     bench/sql/accept_timing.sql) | psql -v ON_ERROR_STOP=1
--   psql -c "SET search_path = accept_timing; SELECT accept_timing('accept_deliveries', 8, 250)"
-- `fn` is 'single' (`accept_delivery` once per delivery) or a batch function's name; `n`
-- deliveries per call, `rounds` calls, each of new keys and new entities. For migration 0003's
-- version, apply 0001-0003 only. Drop the schema afterwards.
CREATE FUNCTION accept_timing(fn text, n integer, rounds integer) RETURNS numeric
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    total interval := '0';
    base bigint := (random() * 1e12)::bigint;
    pay jsonb := '{"source":"attio","trace":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","delivery":{"webhook_id":"0b9a5b2e-7d3c-4a4e-9f3e-2b6c1d0e9a11","events":[{"event_type":"record.updated","id":{"workspace_id":"14beef7a-99f7-4534-a87e-70b564330a4c","object_id":"97052eb9-e65e-443f-a297-f2d9a4a7f795","record_id":"1","attribute_id":"41252299-f8c7-4b5e-99c9-4ff8321d2f96"},"actor":{"type":"workspace-member","id":"50cf242c-7fa3-4cad-87d0-75b1af71c57b"}}]}}';
    a_k text[]; a_i uuid[]; a_j uuid[]; a_e text[];
BEGIN
    FOR r IN 1..rounds LOOP
        a_k := ARRAY(SELECT 'k-' || base || '-' || r || '-' || g FROM generate_series(1, n) g);
        a_i := ARRAY(SELECT gen_random_uuid() FROM generate_series(1, n));
        a_j := ARRAY(SELECT gen_random_uuid() FROM generate_series(1, n));
        a_e := ARRAY(SELECT 'rec-' || base || '-' || r || '-' || g FROM generate_series(1, n) g);
        t0 := clock_timestamp();
        IF fn = 'single' THEN
            FOR g IN 1..n LOOP
                PERFORM accept_delivery('t1', a_k[g], 86400, a_i[g], 'attio', now(),
                    convert_to(repeat('x', 560), 'UTF8'), NULL, a_j[g], 'attio:people', a_e[g], pay, 3, 2);
            END LOOP;
        ELSE
            EXECUTE format('SELECT count(*) FROM %I($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)', fn)
            USING array_fill('t1'::text, ARRAY[n]), a_k, array_fill(86400::float8, ARRAY[n]), a_i,
                  array_fill('attio'::text, ARRAY[n]), array_fill(now(), ARRAY[n]),
                  array_fill(convert_to(repeat('x', 560), 'UTF8'), ARRAY[n]),
                  array_fill(NULL::text, ARRAY[n]), a_j, array_fill('attio:people'::text, ARRAY[n]),
                  a_e, array_fill(pay, ARRAY[n]), array_fill(3, ARRAY[n]), array_fill(2::float8, ARRAY[n]);
        END IF;
        total := total + (clock_timestamp() - t0);
    END LOOP;
    RETURN round((extract(epoch FROM total) * 1e6 / (n * rounds))::numeric, 1);
END
$$;
