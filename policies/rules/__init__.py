"""One rule per module; the pack table in `policies/pack.py` lists them."""
