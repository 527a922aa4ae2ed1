"""Lightning's `trainer.connectors` import path: `data_connector` is fastlight's connector views
(fastlight/trainer/connector_views.py)."""
