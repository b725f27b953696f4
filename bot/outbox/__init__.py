"""The outbox side of the pipeline: what is owed to whom (plan), sending it (deliver), admin notices, and the keys
that make each of them exactly-once (message ids, disabled destinations, signed links).

`bot.outbox.model` holds the typed rows and payload every part shares; the rows themselves live in the store
(`bot.store.deliveries`).
"""
