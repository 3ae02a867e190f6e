"""A minimal Django project served by Pounce: ASGI views (async and sync) and a Channels consumer.

Serve it from the repository root::

    pounce djangosite.asgi:application --app-dir recipes --http2

tests/integration/test_frameworks.py drives it over HTTP/1.1 and HTTP/2, and
docs/testing.md tests it with `pounce.testing.TestServer`.
"""
