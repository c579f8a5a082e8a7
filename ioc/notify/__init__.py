"""Notifications: channels, routing, the transactional outbox, escalation, delivery.

``outbox.enqueue`` is called in the transaction of the event (an alert opens, an incident is
assigned, a report is written); ``ioc notify`` (``worker.py``) delivers. See
docs/notifications.md.
"""
