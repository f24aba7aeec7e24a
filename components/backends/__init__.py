"""Container backends: docker (one host), Cloud Run, Railway (dynamic provider)."""
