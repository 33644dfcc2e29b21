"""The chain: the stage list (`stages`), the executor that runs stages with retries and time limits (`executor`), the
pipeline that runs them under the lock and records them (`pipeline`), and per-run logs (`runlog`)."""
