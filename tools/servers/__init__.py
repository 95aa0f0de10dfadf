"""The built-in MCP servers Vigilus ships: one module (or package) each, listed in tools/servers/registry.py."""
