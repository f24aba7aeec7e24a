-- 0001: the engine's tables on PostgreSQL (#26), the same data as engine/schema.py's PocketBase collections.
--
-- Applied by the migration step (`python -m engine migrate`), signed in as the schema's owner (the migrator
-- account), never by the engine: the engine's account holds only the grants at the end of the newest file.
-- Every table carries the tenant; money is bigint cents and sums are numeric (SUM over bigint), so exact.
-- Order ids are text: the ids PocketBase gave (15 characters of [a-z0-9]) survive a migration unchanged,
-- and new ones are made the same way by the engine.

CREATE TABLE products (
    tenant       text    NOT NULL,
    sku          text    NOT NULL,
    name         text    NOT NULL,
    category     text    NOT NULL DEFAULT '',
    price_cents  bigint  NOT NULL CHECK (price_cents >= 0),
    active       boolean NOT NULL DEFAULT true,
    PRIMARY KEY (tenant, sku)
);

-- A token every admin write of the tenant's products, rules or affiliates replaces in the same transaction
-- (services.Engine._documents): one row per tenant.
CREATE TABLE catalog_versions (
    tenant           text PRIMARY KEY,
    catalog_version  text NOT NULL
);

-- summary_version: a token every write to the affiliate's orders replaces in the same transaction.
CREATE TABLE affiliates (
    tenant           text NOT NULL,
    affiliate_id     text NOT NULL,
    name             text NOT NULL DEFAULT '',
    summary_version  text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant, affiliate_id)
);

CREATE TABLE commission_rules (
    tenant              text   PRIMARY KEY,
    default_rate_bps    bigint NOT NULL CHECK (default_rate_bps >= 0),
    category_rates_bps  jsonb  NOT NULL DEFAULT '{}'::jsonb,
    product_rates_bps   jsonb  NOT NULL DEFAULT '{}'::jsonb,
    order_cap_cents     bigint CHECK (order_cap_cents >= 0)   -- NULL: no cap (0 is a cap)
);

CREATE TABLE orders (
    id                text        PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9]{1,64}$'),
    tenant            text        NOT NULL,
    idempotency_key   text        NOT NULL,
    request_hash      text        NOT NULL,
    affiliate_id      text,                                  -- NULL: no affiliate (PocketBase stores "")
    status            text        NOT NULL CHECK (status IN ('created', 'paid', 'cancelled', 'refunded')),
    commission_status text        NOT NULL,
    currency          text        NOT NULL,
    created_month     text        NOT NULL CHECK (created_month ~ '^[0-9]{4}-[0-9]{2}$'),
    total_cents       bigint      NOT NULL,
    commission_cents  bigint      NOT NULL,
    lines             jsonb       NOT NULL,
    created           timestamptz NOT NULL DEFAULT now(),
    updated           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, idempotency_key)
);
CREATE INDEX orders_summary ON orders (tenant, affiliate_id, created_month);

-- History: one row per status an order left, never updated nor deleted. The primary key lets exactly one
-- change out of each status win (services.Engine.transition).
CREATE TABLE order_transitions (
    tenant       text        NOT NULL,
    order_id     text        NOT NULL REFERENCES orders (id),
    from_status  text        NOT NULL,
    to_status    text        NOT NULL,
    created      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, from_status)
);
