"""Prometheus metrics the SLOs and dashboards use (M1-M5, B4). Names are a contract with the alert rules."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 2.5, 5.0)

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests served", ["route", "method", "status", "tenant"])
HTTP_LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency",
                         ["route", "method", "status", "tenant"], buckets=LATENCY_BUCKETS)
HTTP_IN_FLIGHT = Gauge("http_requests_in_flight", "HTTP requests being served", multiprocess_mode="livesum")
POCKETBASE_LATENCY = Histogram("pocketbase_request_duration_seconds", "PocketBase call latency", ["operation"],
                               buckets=LATENCY_BUCKETS)
POCKETBASE_ERRORS = Counter("pocketbase_errors_total", "PocketBase calls that failed", ["operation"])
POCKETBASE_LOCKS = Counter("pocketbase_lock_errors_total", "PocketBase calls refused because SQLite was locked (B1)",
                           ["operation"])
POCKETBASE_IN_FLIGHT = Gauge("pocketbase_requests_in_flight", "PocketBase calls under way (B2)",
                             multiprocess_mode="livesum")
CACHE_REQUESTS = Counter("cache_requests_total", "Cache lookups by result (hit, miss, error, skipped)",
                         ["cache", "result"])
ORDERS = Counter("orders_total", "Orders created", ["tenant"])
CATALOG_PURGES = Counter("catalog_purges_total", "Catalog URLs purged from the edge after a product write", ["tenant"])
CATALOG_PURGE_FAILURES = Counter("catalog_purge_failures_total",
                                 "Catalog URLs every purge attempt failed for: the edge may serve them stale",
                                 ["tenant"])
