"""The PocketBase image (Dockerfile, entrypoint.sh, pb_hooks) and its disaster-recovery tool (drtool.py)."""
