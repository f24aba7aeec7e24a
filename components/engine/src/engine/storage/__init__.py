"""The order store behind a port (storage/port.py) with two adapters: PocketBase and PostgreSQL."""

from engine.storage.port import NewOrder, NotUnique, Record, Store, StoreUnavailable, WritesPaused, store_data

__all__ = ["NewOrder", "NotUnique", "Record", "Store", "StoreUnavailable", "WritesPaused", "store_data"]
