"""The operations console: a JSON API (OpenAPI documented) and the dashboard, served by
one ASGI app that any number of replicas can run. It reads the probe's cache, the
archive and the streams; it never runs checks itself."""
