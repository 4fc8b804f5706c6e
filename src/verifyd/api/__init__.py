"""HTTP routers: parse, call the service, render."""
