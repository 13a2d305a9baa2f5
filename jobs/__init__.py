"""The scheduler and the jobs it runs; each domain keeps its jobs in a module here."""
