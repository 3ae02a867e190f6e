"""The ASGI adapter: scopes, receive/send, lifespan."""
