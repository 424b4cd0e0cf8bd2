"""caviar's service layer: the CLI, the study store, orchestration and the local executor."""
