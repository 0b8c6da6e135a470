"""The HTTP service: a thin layer over a loaded artifact (app, schemas, event store, web page)."""
