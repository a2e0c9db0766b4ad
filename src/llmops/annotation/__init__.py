"""Human annotation: queues over dataset versions or traces, answers, agreement, accepted versions."""
