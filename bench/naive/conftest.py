"""The naive suite uses testinfra's own `host` fixture and nothing of xenpass."""
