"""Edgewise inside training frameworks: ``edgewise.integrations.lightning`` (Lightning) and
``edgewise.integrations.transformers`` (Hugging Face ``Trainer``). Each module imports its
framework, so import the one you use; the core package needs neither."""
