"""HTTP routers: parse, call a flow, render."""
