"""One ComponentResource per layer. Components take plain, typed arguments and never read config."""
