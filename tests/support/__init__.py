"""Test-support harnesses: throwaway PostgreSQL, live uvicorn server, last-byte sync."""
