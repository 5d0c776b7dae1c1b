"""Load tests with P99 targets: locust scenarios (`locustfile.py`), per-profile targets (`targets.yaml`) and
a runner (`python -m loadtest.run`) that writes reports and says which target was missed."""
