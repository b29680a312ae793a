"""Root conftest: the xenpass pytest plugin serves both checks/ and the project's own tests."""

pytest_plugins = ["xenpass.plugin"]
