"""The school server's HTTP API (`nexus serve`): FastAPI routers over the engine.

`engine.api.app.create_app` builds the application; `engine.auth.api_keys` holds the API keys and
rate limits. Importing this package does not import FastAPI: the CLI stays quick to start.
"""
