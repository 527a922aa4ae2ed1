"""Lightning's `trainer.connectors.data_connector` is fastlight's connector views, fastlight/trainer/connector_views.py
(the same module object: `_request_dataloader` wrapped there is the one the loops call)."""
import sys

from fastlight.trainer import connector_views

sys.modules[__name__] = connector_views  # `import ...connectors.data_connector` gives the connector views module
