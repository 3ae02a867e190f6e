"""Subscribers of the lifecycle events (`pounce.events`): the access log, request ids."""
