"""Load a model and its processor (`load`). Only re-exports; the built-in tiny model is built in
`ablate.world`, the test-only tiny families in `ablate.testing`."""

from ablate.models.load import LoadedModel, chat_template_of, load_model, resolve_model_path

__all__ = ["LoadedModel", "chat_template_of", "load_model", "resolve_model_path"]
