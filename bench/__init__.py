"""The benchmark: ``bench/run.py`` (``make bench``) measures verifyd against the floor."""
