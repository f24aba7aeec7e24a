-- 0003: the history and the commission cannot be forged by the engine's role (#26 item 1, an outside audit).
--
-- 1. 0002's trigger named order_transitions bare: "the current session's temporary-table schema, pg_temp_nnn, is
--    searched if it exists ... If it is not listed in the path then it is searched first (even before pg_catalog)"
--    (https://www.postgresql.org/docs/15/ddl-schemas.html#DDL-SCHEMAS-PATH), so a session with the TEMPORARY right
--    (PUBLIC's by default, https://www.postgresql.org/docs/15/ddl-priv.html, kept on a database Cloud SQL's API
--    creates) made a temporary order_transitions holding any row it liked. The function now names
--    public.order_transitions and runs with a fixed search_path, pg_temp last, as PostgreSQL advises for functions
--    whose callers must not steer them (https://www.postgresql.org/docs/15/sql-createfunction.html, "Writing
--    SECURITY DEFINER Functions Safely"). The temporary schema is never searched for functions or operators.
CREATE OR REPLACE FUNCTION public.orders_status_needs_transition() RETURNS trigger LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT EXISTS (
        SELECT 1 FROM public.order_transitions t
        WHERE t.order_id = OLD.id AND t.from_status = OLD.status AND t.to_status = NEW.status
          AND t.xmin = pg_catalog.pg_current_xact_id()::xid
    ) THEN
        RAISE EXCEPTION 'order % status % -> % without its order_transitions row in this transaction',
            OLD.id, OLD.status, NEW.status USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

-- 2. ... and nobody but the migrator keeps TEMPORARY on this database: taken from PUBLIC, given back to the role
--    running the migrations (the migrator: infra/ops/migrate_db.py stages its copy in temporary tables). Only the
--    database's owner (or a member of its role) can revoke PUBLIC's right (sql-revoke.html); a REVOKE that takes
--    nothing only warns, so the result is checked.
DO $$
BEGIN
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO %I', current_database(), current_user);
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    IF has_database_privilege('public', current_database(), 'TEMPORARY') THEN
        RAISE EXCEPTION 'PUBLIC keeps TEMPORARY on database %: run the migrations as its owner', current_database();
    END IF;
END
$$;

-- 3. An order is born created, its commission pending (domain.model: services.Engine.create_order, COMMISSION_FOR):
--    any other status is reached only along order_transitions (0002's trigger), by the engine and by migrate-db
--    alike (it inserts orders as created and walks them along their transitions).
CREATE FUNCTION public.orders_born_created() RETURNS trigger LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM 'created' THEN
        RAISE EXCEPTION 'order % inserted as %: an order is inserted as created, its other statuses reached '
            'along order_transitions', NEW.id, NEW.status USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER orders_born_created BEFORE INSERT ON public.orders
    FOR EACH ROW EXECUTE FUNCTION public.orders_born_created();

-- 4. The commission is the status's (domain.model COMMISSION_FOR): it changes only with the status, which changes
--    only with its transition row (0002), and only to the new status's commission. The summaries sum it.
ALTER TABLE public.orders ADD CONSTRAINT orders_commission_for_status CHECK (commission_status = CASE status
    WHEN 'created' THEN 'pending' WHEN 'paid' THEN 'approved' WHEN 'cancelled' THEN 'reversed'
    WHEN 'refunded' THEN 'reversed' END);

-- 5. A transition row is one of the lifecycle's moves (domain.model TRANSITIONS): pay, cancel, refund.
ALTER TABLE public.order_transitions ADD CONSTRAINT order_transitions_lifecycle CHECK (
    (from_status, to_status) IN (('created', 'paid'), ('created', 'cancelled'), ('paid', 'refunded')));

-- 6. A transition row names its order's tenant: the key (order_id, tenant) must be an order's (id, tenant).
ALTER TABLE public.orders ADD CONSTRAINT orders_id_tenant_key UNIQUE (id, tenant);
ALTER TABLE public.order_transitions ADD CONSTRAINT order_transitions_order_tenant_fkey
    FOREIGN KEY (order_id, tenant) REFERENCES public.orders (id, tenant);
