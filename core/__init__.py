"""caviar's pure core: the training engine, datasets and search. No I/O services, no Celery, no SQL."""
