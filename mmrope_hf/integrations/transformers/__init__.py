"""transformers integration: the ``from_pretrained`` hook (``mmrope`` config key / keyword) and checkpoint editing."""
