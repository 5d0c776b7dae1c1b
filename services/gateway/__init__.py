"""The gateway: the Serve ingress that speaks the OpenAI API. `app.py` builds the FastAPI app from a `Gateway`
(`gateway.py`); each subpackage holds one concern of a request's way through it."""
