"""Delivery channels: `email` (SMTP), `slack` (Web API / webhooks), and the local sinks the demo and tests use.

Each notifier is a small async class that sends one rendered message and raises `DeliveryError` with the flags
the outbox acts on (`retry`, `unknown`, `stop_batch`, `disable_destination`, `retry_after`). Submodules are not
imported here, so using email does not load slack_sdk and vice versa.
"""
