"""Root conftest. The xenpass plugin is loaded through its pytest11 entry point (pyproject.toml), for checks/
and the project's own tests alike."""
