"""The trip-quote API and web page: FastAPI over the model registry (see `api.app.create_app`)."""
