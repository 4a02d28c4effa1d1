"""What runs: the aiohttp app, auth, middleware, settings, the projector worker, the CLI, embedded PostgreSQL."""
