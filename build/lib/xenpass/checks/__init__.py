"""The compliance suites users run: `pytest checks/`, `xenpass`, or `pytest --pyargs xenpass.checks`."""
