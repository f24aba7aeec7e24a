"""The pure domain: money in integer cents, commission rules, orders and their lifecycle. No I/O."""
