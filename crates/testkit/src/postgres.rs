//! A throwaway PostgreSQL server for tests (owned by the backend issue; see tests/README.md).
