-- 0002: what the engine's role may not do, whatever it is granted (#26). The grants themselves are made by
-- `python -m engine migrate` (engine/migrate.py `GRANTS`) after every run, for the role named by POSTGRES_USER.

-- Nobody but the schema's owner creates objects in it (PostgreSQL 15 already defaults so, older ones do not:
-- https://www.postgresql.org/docs/15/ddl-schemas.html#DDL-SCHEMAS-PATTERNS).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- An order's status changes only with the row in order_transitions saying so (from the old status to the new one),
-- written by the same transaction: the history cannot miss a change, and the primary key of order_transitions
-- (order_id, from_status) is what lets exactly one of racing changes win. "The same transaction": the row's xmin
-- is this transaction's id (https://www.postgresql.org/docs/15/ddl-system-columns.html: "xmin: the identity
-- (transaction ID) of the inserting transaction"; pg_current_xact_id(), functions-info.html). A row inserted under
-- a savepoint carries the subtransaction's id, so the engine writes both without one (storage/postgres.py).
CREATE FUNCTION orders_status_needs_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT EXISTS (
        SELECT 1 FROM order_transitions t
        WHERE t.order_id = OLD.id AND t.from_status = OLD.status AND t.to_status = NEW.status
          AND t.xmin = pg_current_xact_id()::xid
    ) THEN
        RAISE EXCEPTION 'order % status % -> % without its order_transitions row in this transaction',
            OLD.id, OLD.status, NEW.status USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER orders_status_transition BEFORE UPDATE OF status ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_status_needs_transition();
