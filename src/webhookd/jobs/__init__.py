"""Background jobs (recovery) and the retention purge: work that a delivering process runs
in batches beside its delivery engine (docs/RECOVERY.md)."""
