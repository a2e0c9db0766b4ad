"""Jobs: long work (imports, cleaning, evaluation, fine-tuning) with progress, logs and cancellation."""
