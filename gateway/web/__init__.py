"""HTTP shell: aiohttp handlers and middlewares over the engine and the store."""
