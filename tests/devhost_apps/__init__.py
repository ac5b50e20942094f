"""Sample function apps for the devhost tests (tests/integration/test_devhost.py)."""
