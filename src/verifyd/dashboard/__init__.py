"""The operator dashboard: server-rendered pages of the policy and the comparison."""
