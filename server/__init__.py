"""pith server: the REST API (FastAPI) over the service layer in server.service."""
