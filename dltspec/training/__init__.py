"""Stage 4: Program -> Result (the patience loop, the session, run directories, records)."""
