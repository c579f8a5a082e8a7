"""Citizen reports (phản ánh hiện trường: hotline 1022, "Góp ý Đà Nẵng").

One validated, idempotent write path (:func:`ioc.citizen.store.store_events`) used by three
doors: the MQTT topic ``ioc/{ward}/reports`` (the ingester), ``POST /api/v1/reports`` (the
dashboard server, bearer tokens of :mod:`ioc.citizen.tokens`) and ``ioc import reports FILE``
(:mod:`ioc.citizen.importer`). Modules: ``events`` (validation), ``lifecycle`` (the state
machine, replayed from the events), ``store`` (the database write and the contact retention),
``tokens``, ``importer``, ``queries`` (the read side: lists, tracking, figures).
"""
