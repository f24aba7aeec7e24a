"""Developer commands run as scripts (dev.py, mutate.py); a package only so that tests can import them."""
