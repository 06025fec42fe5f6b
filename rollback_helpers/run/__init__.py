"""One run's life: its context, the seams wired to the real world or the sandbox, the archive."""
