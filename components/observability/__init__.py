"""The observability layer: one SLO and alert spec, from which every rule is generated."""
